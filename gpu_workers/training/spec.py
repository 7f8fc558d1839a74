"""What crosses from the control plane to a training worker, and what comes back.

Like a graph job (``backends.base.JobPayload``) a training job carries ids, storage keys and
parameters, never bytes or database rows, so the same spec runs in a Celery worker or a Modal
container. Progress goes back through ``TrainingEvents``; the Django side implements it over the job
row and the channel layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from gpu_workers.artifacts import check_segment, workspace_prefix


class TrainingItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1, description="Artifact key of the (re-encoded, metadata-free) PNG.")
    caption: str = Field(description="What the image shows, with the trigger word.")
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class TrainingSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    workspace_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    family: str = Field(pattern=r"^(sd15|sdxl|flux)$")
    params: dict[str, Any] = Field(description="Resolved parameters (presets.resolve_params).")
    items: tuple[TrainingItem, ...] = Field(min_length=1)
    sample_prompts: tuple[str, ...] = Field(default=(), description="Drawn at every checkpoint, fixed seeds.")
    trigger_word: str = ""
    resume_from_step: int | None = Field(default=None, ge=1, description="Checkpoint to continue from.")
    run: int = Field(default=1, ge=1, description="Attempt number, recorded with every step.")

    @property
    def prefix(self) -> str:
        """Where this job's checkpoints live, under its workspace."""
        return f"{workspace_prefix(self.workspace_id)}trainings/{check_segment(self.job_id, 'job id')}/"

    def checkpoint_prefix(self, step: int) -> str:
        return f"{self.prefix}checkpoints/step-{step:06d}/"


@dataclass(frozen=True)
class Sample:
    key: str
    sha256: str
    prompt: str
    seed: int
    width: int
    height: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "sha256": self.sha256,
            "prompt": self.prompt,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class Checkpoint:
    step: int
    prefix: str
    samples: tuple[Sample, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "prefix": self.prefix,
            "samples": [s.as_dict() for s in self.samples],
            "seconds": round(self.seconds, 4),
        }


@dataclass
class TrainingResult:
    lora_key: str
    lora_sha256: str
    lora_size: int
    kohya_key: str
    kohya_sha256: str
    kohya_size: int
    steps: int
    loss_history: list[list[float]] = field(default_factory=list)
    samples: tuple[Sample, ...] = ()
    reproducibility: dict[str, Any] = field(default_factory=dict)


class TrainingEvents(Protocol):
    """Where a training run reports. Every method must be cheap; the loop calls ``step`` every step."""

    def started(self, *, total_steps: int, resumed_from: int | None, device: str) -> None: ...

    def step(self, *, step: int, total: int, loss: float, lr: float, run: int) -> None: ...

    def checkpoint(self, checkpoint: Checkpoint) -> None: ...

    def log(self, message: str) -> None: ...


class NullTrainingEvents:
    def started(self, *, total_steps: int, resumed_from: int | None, device: str) -> None:
        return None

    def step(self, *, step: int, total: int, loss: float, lr: float, run: int) -> None:
        return None

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        return None

    def log(self, message: str) -> None:
        return None


@dataclass
class RecordingTrainingEvents:
    """Keeps every event, for tests and the benchmark."""

    steps: list[tuple[int, float, int]] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    starts: list[int | None] = field(default_factory=list)

    def started(self, *, total_steps: int, resumed_from: int | None, device: str) -> None:
        self.starts.append(resumed_from)

    def step(self, *, step: int, total: int, loss: float, lr: float, run: int) -> None:
        self.steps.append((step, loss, run))

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def log(self, message: str) -> None:
        self.logs.append(message)
