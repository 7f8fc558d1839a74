"""Send jobs to the deployed Modal app (KIZY_COMPUTE_BACKEND=modal) and replay its events here."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gpu_workers.backends.base import ComputeBackend, JobPayload
from gpu_workers.backends.remote import replay
from gpu_workers.executor import GraphResult
from gpu_workers.sdk import EventSink


class ModalNotConfigured(RuntimeError):
    """No Modal credentials: say how to set them instead of failing deep inside the client."""


def modal_credentials_present() -> bool:
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    config = Path(os.environ.get("MODAL_CONFIG_PATH", Path.home() / ".modal.toml"))
    return config.exists() and "token_id" in config.read_text()


class ModalBackend(ComputeBackend):
    def __init__(self, app_name: str | None = None, class_name: str = "GpuWorker") -> None:
        self.app_name = app_name or os.environ.get("KIZY_MODAL_APP", "kizy-gpu")
        self.class_name = class_name

    def submit(
        self,
        payload: JobPayload,
        *,
        events: EventSink | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> GraphResult:
        if not modal_credentials_present():
            raise ModalNotConfigured(
                "KIZY_COMPUTE_BACKEND=modal but no Modal token is configured: set MODAL_TOKEN_ID and "
                "MODAL_TOKEN_SECRET (create them with `modal token new`), then deploy the app with "
                "`modal deploy gpu_workers/backends/modal_app.py`."
            )
        if payload.storage.get("kind") != "s3":
            raise ModalNotConfigured(
                "Modal containers reach files through S3/R2: set KIZY_S3_BUCKET (and endpoint and keys) on the site."
            )
        import modal

        worker_cls = modal.Cls.from_name(self.app_name, self.class_name)
        stream = worker_cls().run.remote_gen(payload.model_dump(mode="json"))
        return replay(stream, events, is_cancelled or (lambda: False))
