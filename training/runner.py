"""Runs one training job inside a worker: lease, resume, train, register the LoRA.

The lease works like a generation's (``studio.runner``): a redelivered duplicate of the task finds the
lease held and exits (J2); a killed worker's lease expires and the next attempt resumes from the
latest checkpoint recorded on the row (J4), so the steps before it are not trained again.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from gpu_workers.models.errors import ModelError
from gpu_workers.models.store import ModelStore
from gpu_workers.sdk import JobCanceled
from gpu_workers.training.spec import Checkpoint, TrainingItem, TrainingResult, TrainingSpec
from studio.engine import Heartbeat, StorageArtifactStore, is_cancel_requested
from studio.models import Status
from studio.runner import worker_id

from . import events
from .models import TrainingJob

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def lease_seconds() -> int:
    return int(getattr(settings, "KIZY_TRAINING_LEASE_SECONDS", 60))


def acquire_lease(job_id: str, owner: str) -> TrainingJob | None:
    """Take the job unless another worker holds a live lease on it or it has ended."""
    now = timezone.now()
    taken = TrainingJob.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner),
        pk=job_id,
        status__in=[Status.STARTING, Status.PROCESSING],
    ).update(
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_seconds()),
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    return TrainingJob.objects.select_related("workspace", "created_by").get(pk=job_id)


def renew_lease(job_id: str, owner: str) -> None:
    TrainingJob.objects.filter(pk=job_id, lease_owner=owner).update(
        lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds())
    )


def _renew_from_heartbeat(job_id: str, owner: str) -> None:
    """Renewal from the heartbeat thread, which must not keep a database connection open after it."""
    try:
        renew_lease(job_id, owner)
    finally:
        connection.close()


class TrainingEventSink:
    """gpu_workers TrainingEvents → the job row + websocket events, off the training loop.

    ``step`` only appends to memory: a publisher thread writes the row and sends the batched losses
    every ``PUBLISH_SECONDS``, so a slow database or channel layer never slows training down.
    Checkpoints and log lines are published at once (they are rare, and a checkpoint should be on the
    row as soon as it exists, since that is what the next attempt resumes from). All writes and sends
    happen under one lock, in order, from whichever thread publishes. The same thread polls the cancel
    flag, so the loop's cancellation check is a memory read.
    """

    PUBLISH_SECONDS = 0.5

    def __init__(self, job: TrainingJob, run: int) -> None:
        self.job = job
        self.run = run
        self.canceled = threading.Event()  # set by the publisher when a cancel request is seen
        self.unsent: list[list[float]] = []
        self.last: dict[str, Any] = {}
        self.log_lines: list[str] = [line for line in (job.logs or "").splitlines() if line]
        self._state = threading.Lock()
        self._publishing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, daemon=True, name="kizy-training-events")

    def __enter__(self) -> TrainingEventSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.publish()

    def _publish_loop(self) -> None:
        try:
            while not self._stop.wait(self.PUBLISH_SECONDS):
                try:
                    if is_cancel_requested(str(self.job.pk)):
                        self.canceled.set()
                    self.publish()
                except Exception:  # noqa: BLE001 - a failed publish is retried; training goes on
                    logger.warning("could not publish training progress", exc_info=True)
        finally:
            connection.close()  # this thread's own database connection

    def publish(self) -> None:
        """Write the row and send the losses not sent yet (no-op when nothing changed)."""
        with self._publishing:
            with self._state:
                losses, self.unsent = self.unsent, []
                fields = {
                    "step": self.job.step,
                    "progress": self.job.progress,
                    "loss_history": list(self.job.loss_history),
                    "checkpoints": list(self.job.checkpoints),
                    "latest_checkpoint_step": self.job.latest_checkpoint_step,
                    "logs": "\n".join(self.log_lines)[-20000:],
                }
                last = dict(self.last)
            TrainingJob.objects.filter(pk=self.job.pk).update(**fields)
            if losses:
                events.emit(
                    self.job,
                    {"type": "training.progress", "status": Status.PROCESSING, **last, "losses": losses},
                )

    def started(self, *, total_steps: int, resumed_from: int | None, device: str) -> None:
        runs = [
            *self.job.runs,
            {
                "run": self.run,
                "worker": worker_id(),
                "device": device,
                "resumed_from": resumed_from,
                "first_step": (resumed_from or 0) + 1,
                "started_at": timezone.now().isoformat(),
            },
        ]
        self.job.runs = runs
        TrainingJob.objects.filter(pk=self.job.pk).update(runs=runs, total_steps=total_steps)
        self.job.total_steps = total_steps
        events.emit(self.job, events.job_state(self.job))

    def step(self, *, step: int, total: int, loss: float, lr: float, run: int) -> None:
        point = [step, round(loss, 6), run]
        with self._state:
            self.job.loss_history.append(point)
            self.job.step, self.job.progress = step, step / max(total, 1)
            self.unsent.append(point[:2])
            self.last = {"step": step, "total": total, "progress": round(self.job.progress, 4), "lr": lr}

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        from .payloads import sample_payload

        with self._state:
            recorded = [c for c in self.job.checkpoints if c["step"] != checkpoint.step]
            self.job.checkpoints = [*recorded, checkpoint.as_dict()]
            self.job.latest_checkpoint_step = checkpoint.step
        self.publish()
        events.emit(
            self.job,
            {
                "type": "training.checkpoint",
                "step": checkpoint.step,
                "samples": [sample_payload(s.as_dict(), absolute_urls=False) for s in checkpoint.samples],
            },
        )

    def log(self, message: str) -> None:
        with self._state:
            self.log_lines.append(f"[{timezone.now():%H:%M:%S}] {message}")
        self.publish()
        events.emit(self.job, {"type": "training.log", "message": message})


def _finish(job: TrainingJob, **fields: Any) -> str:
    fields.setdefault("completed_at", timezone.now())
    fields.update(lease_owner="", lease_expires_at=None)
    with transaction.atomic():
        TrainingJob.objects.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
        events.job_finished_on_commit(job)
    return str(fields.get("status", ""))


def _spec(job: TrainingJob) -> TrainingSpec:
    return TrainingSpec(
        job_id=str(job.pk),
        workspace_id=str(job.workspace_id),
        family=job.family,
        params=job.params,
        items=tuple(TrainingItem(**item) for item in job.items),
        sample_prompts=tuple(job.sample_prompts),
        trigger_word=job.trigger_word,
        resume_from_step=job.latest_checkpoint_step,
        run=job.attempts,
    )


def _device() -> str:
    from studio.backends import _device as studio_device

    return studio_device()


def _train_here(job: TrainingJob, sink: TrainingEventSink, model_path: Path) -> TrainingResult:
    """KIZY_COMPUTE_BACKEND=local: train in this worker's process, on its device."""
    from gpu_workers.training.trainer import train_lora

    return train_lora(
        _spec(job),
        model_path=model_path,
        artifacts=StorageArtifactStore(),
        events=sink,
        is_cancelled=sink.canceled.is_set,
        device=_device(),
    )


def _train_on_compute_backend(job: TrainingJob, sink: TrainingEventSink) -> TrainingResult:
    """KIZY_COMPUTE_BACKEND=modal: the app's GpuTrainer trains on a cloud GPU; its events stream back
    into the same sink (row, websocket), and cancel reaches it through the shared flag. This worker only
    holds the lease while it waits."""
    from gpu_workers.backends.modal_backend import ModalBackend
    from gpu_workers.training.remote import TrainingPayload
    from studio.backends import storage_config

    payload = TrainingPayload(spec=_spec(job), model_ref=job.base_model_ref, storage=storage_config())
    return ModalBackend().submit_training(payload, events=sink, is_cancelled=sink.canceled.is_set)


def training_execute(*, job_id: str) -> str:
    """Run (or resume) the job if this worker can take it. Returns what happened, for logs and tests."""
    owner = worker_id()
    job = acquire_lease(job_id, owner)
    if job is None:
        return "skipped: another worker holds the lease, or the job has ended"
    if job.cancel_requested or is_cancel_requested(job_id):
        return _finish(job, status=Status.CANCELED)
    if job.attempts > MAX_ATTEMPTS:
        return _finish(
            job,
            status=Status.FAILED,
            error=f"Gave up after {MAX_ATTEMPTS} attempts; the worker kept stopping during this training.",
        )
    first_start = job.started_at is None
    resume = job.latest_checkpoint_step
    # Steps after the checkpoint are trained again, so their earlier records go.
    history = [entry for entry in job.loss_history if resume and entry[0] <= resume]
    TrainingJob.objects.filter(pk=job.pk).update(
        status=Status.PROCESSING,
        started_at=job.started_at or timezone.now(),
        loss_history=history,
        step=resume or 0,
    )
    job.refresh_from_db()
    events.emit(job, events.job_state(job))
    if first_start:
        events.queue_webhooks(job, "start")

    remote = settings.KIZY_COMPUTE_BACKEND == "modal"
    model_path: Path | None = None
    if not remote:
        try:
            model_path = Path(
                ModelStore(settings.KIZY_MODEL_STORE).resolve(
                    job.base_model_ref, artifacts=StorageArtifactStore(), workspace_id=str(job.workspace_id)
                )
            )
        except ModelError as exc:
            return _finish(
                job, status=Status.FAILED, error=f"The base model is not available on this worker: {exc}"
            )

    started = time.monotonic()
    sink = TrainingEventSink(job, run=job.attempts)
    try:
        with Heartbeat(lambda: _renew_from_heartbeat(job_id, owner), every=max(lease_seconds() / 3, 0.5)), sink:
            result = (
                _train_on_compute_backend(job, sink) if model_path is None else _train_here(job, sink, model_path)
            )
    except JobCanceled:
        return _finish(job, status=Status.CANCELED)
    except (ValueError, FloatingPointError, ModelError) as exc:
        return _finish(job, status=Status.FAILED, error=str(exc), logs="\n".join(sink.log_lines))
    except RuntimeError as exc:
        message = str(exc)
        if "out of memory" in message.lower():
            message = (
                "The GPU ran out of memory. Lower the batch size or the resolution, or turn gradient "
                f"checkpointing on. ({message[:200]})"
            )
        return _finish(job, status=Status.FAILED, error=message, logs="\n".join(sink.log_lines))

    from .catalog import register_trained_lora

    with transaction.atomic():
        lora = register_trained_lora(
            job=job,
            lora_key=result.lora_key,
            lora_sha256=result.lora_sha256,
            lora_size=result.lora_size,
            kohya_key=result.kohya_key,
            kohya_sha256=result.kohya_sha256,
            kohya_size=result.kohya_size,
        )
        outcome = _finish(
            job,
            status=Status.SUCCEEDED,
            progress=1.0,
            step=result.steps,
            lora=lora,
            lora_key=result.lora_key,
            kohya_key=result.kohya_key,
            lora_sha256=result.lora_sha256,
            loss_history=result.loss_history,
            checkpoints=sink.job.checkpoints,
            latest_checkpoint_step=sink.job.latest_checkpoint_step,
            logs="\n".join(sink.log_lines)[-20000:],
            reproducibility={**result.reproducibility, "seconds": round(time.monotonic() - started, 3)},
        )
    drop_checkpoint_files(job.checkpoints or [])
    return outcome


CHECKPOINT_FILES = ("lora.safetensors", "optimizer.safetensors", "state.json")


def drop_checkpoint_files(checkpoints: list[dict[str, Any]]) -> int:
    """Once a training has succeeded its checkpoints (adapter, optimiser and RNG state, for resuming)
    serve no purpose and can be large; the final LoRA and the sample images (stored apart, by content)
    stay. A file that cannot be removed is logged and left; the training has succeeded either way."""
    from django.core.files.storage import default_storage

    removed = 0
    for checkpoint in checkpoints:
        prefix = str(checkpoint.get("prefix") or "")
        if not prefix.endswith("/") or "/checkpoints/" not in prefix:
            continue
        for name in CHECKPOINT_FILES:
            try:
                if default_storage.exists(prefix + name):
                    default_storage.delete(prefix + name)
                    removed += 1
            except Exception:  # noqa: BLE001 - storage hiccups must not undo a finished training
                logger.warning("could not remove checkpoint file %s%s", prefix, name, exc_info=True)
    return removed


def requeue_stale_trainings(*, older_than: int | None = None) -> list[str]:
    """Trainings whose worker vanished (lease expired) or whose message was lost: queue them again."""
    from .services import enqueue

    older_than = older_than or lease_seconds()
    now = timezone.now()
    stale = TrainingJob.objects.filter(
        Q(status=Status.PROCESSING, lease_expires_at__lt=now)
        | Q(status=Status.STARTING, lease_owner="", created_at__lt=now - timedelta(seconds=older_than))
        | Q(status=Status.STARTING, lease_expires_at__lt=now)
    )
    requeued = []
    for job in stale:
        enqueue(job)
        requeued.append(str(job.pk))
    return requeued
