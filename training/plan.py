"""Which preset a training gets, where it will run, and about how long it will take.

The full presets (1000-1500 steps at 512-1024 px) are right for a real model on a GPU and take hours on
a CPU, where they would also hold the one ``gpu`` worker the studio's generations wait for. So the
tiny demo models (random weights, made for 64 px) and any worker that trains on a CPU get the quick
preset (``presets.QUICK_OVERRIDES``), and the dataset page says so, with the device and an estimate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.models import Workspace
from models_catalog.models import BaseModel

#: Measured with the trainer on the tiny SD 1.5 at 64 px, batch 1, one thread of a busy 2-core CPU
#: (bench-style run of ``train_lora``): 20 steps in 1.65 s, and a checkpoint with two 4-step samples
#: in 0.34 s. Other sizes scale with the pixels per step. Loading the model adds a few seconds.
TINY_CPU_SECONDS_PER_STEP_64PX = 0.085
TINY_CPU_SECONDS_PER_SAMPLE_STEP_64PX = 0.04
STARTUP_SECONDS = 10.0


@functools.cache
def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _last_reported_device() -> str | None:
    """The device the most recent training run reported (``runs[-1].device``, set by the worker).

    Only that one infrastructure fact is read, whatever the workspace: it tells a web process without
    a GPU that the ``gpu`` workers have one (or the reverse)."""
    from .models import TrainingJob

    runs = (
        TrainingJob.objects.filter(started_at__isnull=False)
        .exclude(runs=[])
        .order_by("-started_at")
        .values_list("runs", flat=True)
        .first()
    )
    device = runs[-1].get("device") if isinstance(runs, list) and runs and isinstance(runs[-1], dict) else None
    return str(device) if device else None


def worker_device() -> str:
    """Where trainings run: "modal" (a cloud GPU), KIZY_DEVICE when it is set, else what the last
    training's worker reported, else this process's own torch device (the embedded setup, where the
    worker runs on the same machine)."""
    if getattr(settings, "KIZY_COMPUTE_BACKEND", "local") == "modal":
        return "modal"
    configured = str(getattr(settings, "KIZY_DEVICE", "auto"))
    if configured != "auto":
        return configured
    return _last_reported_device() or ("cuda" if _cuda_available() else "cpu")


def wants_quick_preset(model: BaseModel | None, *, device: str | None = None) -> bool:
    """Demo models, and every model when the worker trains on a CPU."""
    if model is not None and model.is_demo:
        return True
    return (device or worker_device()) == "cpu"


@dataclass(frozen=True)
class Plan:
    quick: bool
    device: str
    seconds: float | None  # None: no honest figure (a real model on a CPU, or a GPU never timed here)
    measured: bool  # the figure comes from an earlier training of this model here
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "quick_preset": self.quick,
            "device": self.device,
            "estimated_seconds": None if self.seconds is None else round(self.seconds),
            "note": self.note,
        }


def _checkpoints(params: dict[str, Any]) -> int:
    return max(1, math.ceil(int(params["steps"]) / max(int(params["checkpoint_every"]), 1)))


def _tiny_cpu_seconds(params: dict[str, Any], prompts: int = 2) -> float:
    scale = (int(params["resolution"]) / 64) ** 2
    training = int(params["steps"]) * int(params["batch_size"]) * TINY_CPU_SECONDS_PER_STEP_64PX * scale
    sampling = _checkpoints(params) * prompts * int(params["sample_steps"]) * TINY_CPU_SECONDS_PER_SAMPLE_STEP_64PX
    return STARTUP_SECONDS + training + sampling * scale


def _measured_seconds(workspace: Workspace, model: BaseModel, params: dict[str, Any]) -> float | None:
    """Seconds per step of this workspace's last finished training of the same model at the same size."""
    from studio.models import Status

    from .access import trainings_for_workspace

    earlier = (
        trainings_for_workspace(workspace=workspace)
        .filter(
            base_model=model,
            status=Status.SUCCEEDED,
            params__resolution=params["resolution"],
            params__batch_size=params["batch_size"],
        )
        .order_by("-completed_at")
        .values_list("reproducibility", "step")
        .first()
    )
    if not earlier or not earlier[1] or not (earlier[0] or {}).get("seconds"):
        return None
    return float(earlier[0]["seconds"]) / int(earlier[1])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(10, round(seconds / 10) * 10)} seconds"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    return f"about {seconds / 3600:.1f} hours"


DEVICE_WORDS = {"cpu": "the CPU", "cuda": "the GPU (CUDA)", "mps": "the Apple GPU (MPS)", "modal": "a Modal cloud GPU"}


def training_plan(
    *, workspace: Workspace, model: BaseModel | None, params: dict[str, Any], quick: bool | None = None
) -> Plan:
    """What the dataset page tells a person before they start: device, preset, estimated time."""
    device = worker_device()
    quick = wants_quick_preset(model, device=device) if quick is None else quick
    where = DEVICE_WORDS.get(device, device)
    per_step = _measured_seconds(workspace, model, params) if model is not None else None
    seconds: float | None = None
    if per_step is not None:
        seconds = per_step * int(params["steps"])
    elif device == "cpu" and model is not None and model.is_demo:
        seconds = _tiny_cpu_seconds(params)
    steps = f"{params['steps']} steps at {params['resolution']} px"
    if quick and model is not None and model.is_demo:
        why = f"{model.name} is a tiny demo model, so this uses the quick preset ({steps})."
    elif quick:
        why = (
            f"The worker trains on {where}, so this uses the quick preset ({steps}): it shows the whole "
            "flow, but a LoRA worth using needs a GPU and the full preset."
        )
    else:
        why = f"Preset: {steps}."
    if seconds is not None:
        basis = "as the last training of this model here took" if per_step is not None else "estimated"
        timing = f"Training runs on {where}: {_duration(seconds)} ({basis})."
    elif device == "cpu":
        timing = (
            f"Training runs on {where}. A full-size model is very slow there (minutes per step at its "
            "native size), and it holds the worker the studio also uses until it ends."
        )
    else:
        timing = f"Training runs on {where}."
    return Plan(quick=quick, device=device, seconds=seconds, measured=per_step is not None, note=f"{timing} {why}")
