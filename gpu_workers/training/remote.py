"""Training where events must cross a process boundary (Modal), like ``backends.remote`` for graphs.

The container runs ``train_lora`` in a thread and yields its events as JSON-able dicts (``started``,
``step``, ``checkpoint``, ``log``), then ``{"result": ...}`` or ``{"error": ...}``. The worker that
called it replays them into its own ``TrainingEvents`` (the job row, the websocket) with
``replay_training``, which rebuilds the result or raises what the training raised. Checkpoints are
written to the shared bucket by the container, so a retried job resumes from them wherever it runs.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gpu_workers.artifacts import artifact_store_from_config
from gpu_workers.backends.remote import stream_in_thread
from gpu_workers.models.errors import ModelError
from gpu_workers.sdk import JobCanceled
from gpu_workers.training.spec import Checkpoint, Sample, TrainingEvents, TrainingResult, TrainingSpec


class TrainingPayload(BaseModel):
    """One training job as it is sent to a remote worker: the spec, the base model, the storage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: TrainingSpec
    model_ref: str = Field(min_length=1, description="Model-store reference of the base model.")
    storage: dict[str, Any] = Field(description='Artifact store config, e.g. {"kind": "s3", ...}.')


class RemoteTrainingError(RuntimeError):
    """The remote training failed outside the trainer's own checks; carries the container's message."""


class QueueTrainingEvents:
    """``TrainingEvents`` that put JSON-able dicts on a queue (the container side)."""

    def __init__(self, events: queue.Queue[Any]) -> None:
        self.events = events

    def started(self, *, total_steps: int, resumed_from: int | None, device: str) -> None:
        self.events.put(
            {"event": "started", "total_steps": total_steps, "resumed_from": resumed_from, "device": device}
        )

    def step(self, *, step: int, total: int, loss: float, lr: float, run: int) -> None:
        self.events.put({"event": "step", "step": step, "total": total, "loss": loss, "lr": lr, "run": run})

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        self.events.put({"event": "checkpoint", "checkpoint": checkpoint.as_dict()})

    def log(self, message: str) -> None:
        self.events.put({"event": "log", "message": message})


def _error(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, JobCanceled):
        return {"kind": "canceled", "message": "the training was canceled"}
    if isinstance(exc, ModelError):
        return {"kind": "model", "message": str(exc)}
    if isinstance(exc, (ValueError, FloatingPointError)):
        return {"kind": "invalid", "message": str(exc)}
    if isinstance(exc, RuntimeError):  # CUDA out of memory among them: the site words that one itself
        return {"kind": "runtime", "message": str(exc)}
    return {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}


def stream_training(
    payload: dict[str, Any],
    *,
    model_store: str | Path,
    device: str,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """Run the training in a thread and yield its events, then ``{"result": ...}`` or ``{"error": ...}``."""
    from gpu_workers.models.store import ModelStore
    from gpu_workers.training.trainer import train_lora

    job = TrainingPayload.model_validate(payload)

    def work(events: queue.Queue[Any]) -> dict[str, Any]:
        try:
            artifacts = artifact_store_from_config(job.storage)
            model_path = ModelStore(model_store).resolve(
                job.model_ref, artifacts=artifacts, workspace_id=job.spec.workspace_id
            )
            result = train_lora(
                job.spec,
                model_path=Path(model_path),
                artifacts=artifacts,
                events=QueueTrainingEvents(events),
                is_cancelled=is_cancelled,
                device=device,
            )
            return {"result": {
                "lora_key": result.lora_key,
                "lora_sha256": result.lora_sha256,
                "lora_size": result.lora_size,
                "kohya_key": result.kohya_key,
                "kohya_sha256": result.kohya_sha256,
                "kohya_size": result.kohya_size,
                "steps": result.steps,
                "loss_history": result.loss_history,
                "samples": [s.as_dict() for s in result.samples],
                "reproducibility": result.reproducibility,
            }}
        except BaseException as exc:  # noqa: BLE001 - every failure's words must reach the site
            return {"error": _error(exc)}

    return stream_in_thread(work, thread_name=f"kizy-training-{job.spec.job_id}")


def _sample(data: dict[str, Any]) -> Sample:
    return Sample(**{name: data[name] for name in ("key", "sha256", "prompt", "seed", "width", "height")})


def _checkpoint(data: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        step=int(data["step"]),
        prefix=str(data["prefix"]),
        samples=tuple(_sample(s) for s in data.get("samples", [])),
        seconds=float(data.get("seconds", 0.0)),
    )


def replay_training(
    stream: Iterator[dict[str, Any]],
    events: TrainingEvents | None,
    is_cancelled: Callable[[], bool],
    on_cancel: Callable[[], None] | None = None,
) -> TrainingResult:
    """Feed streamed events to ``events`` and rebuild the result, or raise what the training raised.

    When ``is_cancelled`` turns true, ``on_cancel`` tells the remote side (it stops before its next
    step) and ``JobCanceled`` is raised here."""
    for item in stream:
        if is_cancelled():
            if on_cancel is not None:
                on_cancel()
            raise JobCanceled()
        kind = item.get("event")
        if kind is None:
            if "result" in item:
                data = item["result"]
                return TrainingResult(
                    **{k: v for k, v in data.items() if k != "samples"},
                    samples=tuple(_sample(s) for s in data.get("samples", [])),
                )
            error = item.get("error", {})
            message = str(error.get("message") or "no message was given")
            if error.get("kind") == "canceled":
                raise JobCanceled()
            if error.get("kind") == "model":
                raise ModelError(message)
            if error.get("kind") == "invalid":
                raise ValueError(message)
            if error.get("kind") == "runtime":
                raise RuntimeError(message)
            raise RemoteTrainingError(f"The remote training worker failed: {message}")
        if events is None:
            continue
        if kind == "started":
            events.started(total_steps=item["total_steps"], resumed_from=item["resumed_from"], device=item["device"])
        elif kind == "step":
            events.step(step=item["step"], total=item["total"], loss=item["loss"], lr=item["lr"], run=item["run"])
        elif kind == "checkpoint":
            events.checkpoint(_checkpoint(item["checkpoint"]))
        elif kind == "log":
            events.log(item["message"])
    raise RemoteTrainingError("The remote training ended without a result.")
