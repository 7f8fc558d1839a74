"""Training presets per model family, every parameter with its bounds and an explanation.

The presets are what a careful person would pick for a first LoRA of 10-30 images: they follow the
defaults of diffusers' LoRA scripts and of kohya's sd-scripts for each family. "Advanced" in the UI
shows the same table, so the bounds and the words below are the whole user-facing contract; the API
refuses values outside the bounds with the explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["sd15", "sdxl", "flux"]
FAMILIES: tuple[Family, ...] = ("sd15", "sdxl", "flux")
FAMILY_LABELS: Mapping[str, str] = {"sd15": "SD 1.5", "sdxl": "SDXL", "flux": "Flux.1"}
GoalType = Literal["subject", "style"]

#: The resolution each family was trained at: images smaller than this are upscaled (soft detail).
NATIVE_RESOLUTION: Mapping[str, int] = {"sd15": 512, "sdxl": 1024, "flux": 1024}
#: Fewest images worth training on, per goal (a style needs more variety than a subject).
RECOMMENDED_MIN_IMAGES: Mapping[str, int] = {"subject": 5, "style": 10}


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    kind: Literal["int", "float", "bool", "choice"]
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    advanced: bool = True

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "help": self.help,
            "advanced": self.advanced,
        }
        if self.minimum is not None:
            described["min"] = self.minimum
        if self.maximum is not None:
            described["max"] = self.maximum
        if self.choices:
            described["choices"] = list(self.choices)
        return described


PARAMS: tuple[Param, ...] = (
    Param(
        "steps",
        "Training steps",
        "int",
        "How many optimisation steps to run. More steps learn the images more closely; too many copy them "
        "(the LoRA then reproduces backgrounds and poses). About 100 steps per image, capped near 2000, is a "
        "good start.",
        1,
        20000,
        advanced=False,
    ),
    Param(
        "rank",
        "Rank",
        "int",
        "Size of the adapter. Higher ranks hold more detail but take more memory and overfit sooner; 8-32 "
        "suits a subject or a style.",
        1,
        256,
    ),
    Param(
        "alpha",
        "Alpha",
        "float",
        "Scales the adapter's effect (the update is multiplied by alpha / rank). Equal to the rank is "
        "neutral; half the rank trains more gently.",
        0.5,
        512,
    ),
    Param(
        "learning_rate",
        "Learning rate",
        "float",
        "How big each update is. Too high and the images turn to noise or saturate; too low and nothing is "
        "learned in the steps you give it.",
        1e-6,
        1e-2,
    ),
    Param(
        "lr_warmup_steps",
        "Warm-up steps",
        "int",
        "Steps over which the learning rate ramps up from zero, which avoids a bad first update.",
        0,
        5000,
    ),
    Param(
        "lr_scheduler",
        "Learning-rate schedule",
        "choice",
        "constant keeps the rate; cosine lowers it smoothly to zero by the last step, which often gives "
        "cleaner results for long runs.",
        choices=("constant", "cosine"),
    ),
    Param(
        "resolution",
        "Resolution",
        "int",
        "Longest side, in pixels, that images are trained at (a multiple of 64). Use the family's native "
        "resolution; lower is faster but the LoRA then works best at that size.",
        64,
        2048,
    ),
    Param(
        "batch_size",
        "Batch size",
        "int",
        "Images per step. Larger batches give steadier updates but need more GPU memory.",
        1,
        32,
    ),
    Param(
        "buckets",
        "Aspect-ratio buckets",
        "bool",
        "Train portrait and landscape images at their own shape instead of cropping them to a square.",
        advanced=False,
    ),
    Param(
        "checkpoint_every",
        "Checkpoint every",
        "int",
        "Save the adapter, the optimiser state and sample images every this many steps. Training resumes "
        "from the last checkpoint if the worker stops.",
        1,
        20000,
    ),
    Param(
        "sample_steps",
        "Sample quality",
        "int",
        "Denoising steps for the sample images drawn at each checkpoint.",
        1,
        100,
    ),
    Param(
        "seed",
        "Seed",
        "int",
        "Fixes the noise, the order of the images and the samples, so the same settings train the same LoRA.",
        0,
        2**32 - 1,
    ),
    Param(
        "mixed_precision",
        "Precision",
        "choice",
        "auto uses bf16 (or fp16) on a GPU and fp32 on a CPU. Lower precision halves memory.",
        choices=("auto", "no", "fp16", "bf16"),
    ),
    Param(
        "gradient_checkpointing",
        "Gradient checkpointing",
        "bool",
        "Trades about 20% speed for much less GPU memory. On by default on GPUs.",
    ),
    Param(
        "guidance_scale",
        "Guidance (Flux)",
        "float",
        "Flux's distilled guidance value used while training and for samples.",
        1.0,
        10.0,
    ),
)
PARAM_BY_NAME: Mapping[str, Param] = {param.name: param for param in PARAMS}

_COMMON: dict[str, Any] = {
    "lr_warmup_steps": 0,
    "lr_scheduler": "constant",
    "batch_size": 1,
    "buckets": True,
    "sample_steps": 20,
    "seed": 42,
    "mixed_precision": "auto",
    "gradient_checkpointing": True,
    "guidance_scale": 1.0,
}
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "sd15": {
        **_COMMON,
        "steps": 1500,
        "rank": 16,
        "alpha": 16.0,
        "learning_rate": 1e-4,
        "resolution": 512,
        "checkpoint_every": 250,
        "batch_size": 2,
    },
    "sdxl": {
        **_COMMON,
        "steps": 1500,
        "rank": 16,
        "alpha": 16.0,
        "learning_rate": 1e-4,
        "resolution": 1024,
        "checkpoint_every": 250,
    },
    "flux": {
        **_COMMON,
        "steps": 1000,
        "rank": 16,
        "alpha": 16.0,
        "learning_rate": 1e-4,
        "resolution": 1024,
        "checkpoint_every": 250,
        "guidance_scale": 1.0,
        "sample_steps": 20,
    },
}


#: What changes for a quick run: the tiny demo models (random weights, 64 px natively) and any worker
#: that trains on a CPU, where the full presets take hours and hold the one ``gpu`` worker that the
#: studio's generations also wait for. A few dozen steps at 64 px give a LoRA in about a minute on the
#: demo model; on a real model it is a smoke test (training works, the LoRA loads), not a good LoRA.
QUICK_OVERRIDES: Mapping[str, Any] = {
    "steps": 60,
    "resolution": 64,
    "checkpoint_every": 20,
    "sample_steps": 4,
    "batch_size": 1,
    "gradient_checkpointing": False,
}


def preset_for(family: str, *, quick: bool = False) -> dict[str, Any]:
    """The family's preset, or its quick variant (``QUICK_OVERRIDES``) for demo models and CPU workers."""
    preset = dict(PRESETS[family])
    if quick:
        preset.update(QUICK_OVERRIDES)
    return preset


class ParamError(ValueError):
    """A training parameter is unknown or out of bounds; ``errors`` maps names to messages."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


def _coerce(param: Param, value: Any) -> Any:
    if param.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError("must be true or false")
    if param.kind == "choice":
        if value not in param.choices:
            raise ValueError(f"must be one of {', '.join(param.choices)}")
        return value
    if isinstance(value, bool):
        raise ValueError("must be a number")
    number = float(value)
    if param.kind == "int":
        if number != int(number):
            raise ValueError("must be a whole number")
        number = int(number)
    if param.minimum is not None and number < param.minimum:
        raise ValueError(f"must be at least {param.minimum:g}")
    if param.maximum is not None and number > param.maximum:
        raise ValueError(f"must be at most {param.maximum:g}")
    return number


def resolve_params(
    family: str, overrides: Mapping[str, Any] | None = None, *, quick: bool = False
) -> dict[str, Any]:
    """The family's preset (``quick``: its short variant) with ``overrides`` applied and checked;
    ``ParamError`` says what to fix."""
    if family not in PRESETS:
        raise ParamError(
            {"family": f"LoRA training supports {', '.join(FAMILY_LABELS.values())}, not {family!r}"}
        )
    params = preset_for(family, quick=quick)
    errors: dict[str, str] = {}
    for name, value in (overrides or {}).items():
        param = PARAM_BY_NAME.get(name)
        if param is None:
            errors[name] = f"unknown parameter; known: {', '.join(PARAM_BY_NAME)}"
            continue
        if value is None or value == "":
            continue
        try:
            params[name] = _coerce(param, value)
        except (TypeError, ValueError) as exc:
            errors[name] = f"{param.label} {exc}. {param.help}"
    if not errors:
        if params["resolution"] % 64:
            errors["resolution"] = "Resolution must be a multiple of 64 (e.g. 512, 768, 1024)."
        if "checkpoint_every" not in (overrides or {}):
            params["checkpoint_every"] = min(params["checkpoint_every"], params["steps"])
        if params["lr_warmup_steps"] >= params["steps"] and params["lr_warmup_steps"]:
            errors["lr_warmup_steps"] = "Warm-up must be shorter than the training run."
    if errors:
        raise ParamError(errors)
    return params


def describe_presets() -> dict[str, Any]:
    """The presets and parameter table as JSON, for the API and the "Advanced" form."""
    return {
        "families": [
            {
                "family": family,
                "label": FAMILY_LABELS[family],
                "native_resolution": NATIVE_RESOLUTION[family],
                "preset": preset_for(family),
                "quick_preset": preset_for(family, quick=True),
            }
            for family in FAMILIES
        ],
        "params": [param.describe() for param in PARAMS],
        "recommended_min_images": dict(RECOMMENDED_MIN_IMAGES),
        "quick_preset_is_for": "demo models and workers that train on a CPU",
    }
