"""Send jobs to the deployed Modal app (KIZY_COMPUTE_BACKEND=modal) and replay its events here."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_workers.backends.base import ComputeBackend, JobPayload
from gpu_workers.backends.remote import replay
from gpu_workers.executor import GraphResult
from gpu_workers.sdk import EventSink
from gpu_workers.training.remote import TrainingPayload
from gpu_workers.training.spec import TrainingEvents, TrainingResult

logger = logging.getLogger(__name__)


class ModalNotConfigured(RuntimeError):
    """No Modal credentials: say how to set them instead of failing deep inside the client."""


def modal_credentials_present() -> bool:
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    config = Path(os.environ.get("MODAL_CONFIG_PATH", Path.home() / ".modal.toml"))
    return config.exists() and "token_id" in config.read_text()


CREDENTIAL_FIELDS = ("access_key", "secret_key")


def remote_payload(payload: JobPayload) -> dict[str, Any]:
    """What goes over the wire: with KIZY_MODAL_STORAGE_SECRET set, the bucket keys stay out of the
    payload (the container reads them from that modal.Secret's AWS_* variables instead)."""
    data = payload.model_dump(mode="json")
    if os.environ.get("KIZY_MODAL_STORAGE_SECRET"):
        data["storage"] = {k: v for k, v in data["storage"].items() if k not in CREDENTIAL_FIELDS}
    return data


def request_remote_cancel(flags: Any, job_id: str) -> None:
    """Raise the job's flag in the shared ``modal.Dict``; the container's executor polls it and stops at
    its next step, so the GPU stops billing. A failed write is logged: the job is canceled here anyway."""
    try:
        flags[job_id] = True
    except Exception:  # noqa: BLE001 - the site must still report the cancellation
        logger.warning("could not tell the Modal container to cancel job %s", job_id, exc_info=True)


class ModalBackend(ComputeBackend):
    def __init__(self, app_name: str | None = None, class_name: str = "GpuWorker") -> None:
        self.app_name = app_name or os.environ.get("KIZY_MODAL_APP", "kizy-gpu")
        self.class_name = class_name
        self.cancel_dict = os.environ.get("KIZY_MODAL_CANCEL_DICT", "kizy-cancel")

    def submit(
        self,
        payload: JobPayload,
        *,
        events: EventSink | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> GraphResult:
        _require_modal(payload.storage, "files")
        import modal

        worker_cls = modal.Cls.from_name(self.app_name, self.class_name)
        flags = modal.Dict.from_name(self.cancel_dict, create_if_missing=True)
        stream = worker_cls().run.remote_gen(remote_payload(payload))
        return replay(stream, events, is_cancelled or (lambda: False),
                      on_cancel=lambda: request_remote_cancel(flags, payload.job_id))

    def submit_training(
        self,
        payload: TrainingPayload,
        *,
        events: TrainingEvents | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        class_name: str = "GpuTrainer",
    ) -> TrainingResult:
        """Run one LoRA training in the app's ``GpuTrainer`` and replay its events into ``events``.

        Raises ``JobCanceled``, ``ModelError``, ``ValueError`` or ``RuntimeError`` like ``train_lora``."""
        from gpu_workers.training.remote import replay_training

        _require_modal(payload.storage, "the training images")
        import modal

        flags = modal.Dict.from_name(self.cancel_dict, create_if_missing=True)
        try:  # `from_name` is lazy: a missing app or class shows up once the call is made
            data = payload.model_dump(mode="json")
            if os.environ.get("KIZY_MODAL_STORAGE_SECRET"):  # the container has the keys (remote_payload)
                data["storage"] = {k: v for k, v in data["storage"].items() if k not in CREDENTIAL_FIELDS}
            stream = modal.Cls.from_name(self.app_name, class_name)().train.remote_gen(data)
            return replay_training(stream, events, is_cancelled or (lambda: False),
                                   on_cancel=lambda: request_remote_cancel(flags, payload.spec.job_id))
        except modal.exception.NotFoundError as exc:
            raise ModalNotConfigured(
                f"The Modal app {self.app_name!r} has no {class_name} ({exc}): deploy it again with "
                "`modal deploy gpu_workers/backends/modal_app.py`."
            ) from exc


def _require_modal(storage: dict[str, Any], what: str) -> None:
    """Fail at once, in words an operator can act on, when Modal cannot run anything for this site."""
    if not modal_credentials_present():
        raise ModalNotConfigured(
            "KIZY_COMPUTE_BACKEND=modal but no Modal token is configured: set MODAL_TOKEN_ID and "
            "MODAL_TOKEN_SECRET (create them with `modal token new`), then deploy the app with "
            "`modal deploy gpu_workers/backends/modal_app.py`."
        )
    if storage.get("kind") != "s3":
        raise ModalNotConfigured(
            f"Modal containers reach {what} through S3/R2: set KIZY_S3_BUCKET (and endpoint and keys) on the site."
        )
