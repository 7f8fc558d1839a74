"""The small set of named samplers users can pick, mapped onto diffusers scheduler classes.

Names follow what users know from A1111/ComfyUI. Each is built from the model's own default scheduler
config (its training betas, timestep spacing), so swapping the sampler never changes the noise
schedule the model was trained with. Flux is a flow-matching model: only its own Euler sampler
applies, and asking for another is an error rather than a silent substitution.
"""

from __future__ import annotations

from typing import Any, Literal

from gpu_workers.models.errors import UnsupportedModelError
from gpu_workers.models.lazy import untyped

SchedulerName = Literal["default", "euler", "euler_a", "dpm++_2m", "dpm++_2m_karras", "ddim"]
SCHEDULER_NAMES: tuple[str, ...] = ("default", "euler", "euler_a", "dpm++_2m", "dpm++_2m_karras", "ddim")
_FLOW_MATCHING_FAMILIES = {"flux"}


def make_scheduler(name: str, default: Any, family: str) -> Any:
    """A fresh scheduler named ``name``, configured from the pipeline's ``default`` scheduler."""
    diffusers = untyped("diffusers")
    if name == "default":
        return type(default).from_config(default.config)
    if family in _FLOW_MATCHING_FAMILIES:
        if name == "euler":
            return diffusers.FlowMatchEulerDiscreteScheduler.from_config(default.config)
        raise UnsupportedModelError(
            f"scheduler {name!r} does not apply to flow-matching Flux models; use 'default' or 'euler'"
        )
    config = dict(default.config)
    if name == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(config)
    if name == "euler_a":
        return diffusers.EulerAncestralDiscreteScheduler.from_config(config)
    if name == "dpm++_2m":
        return diffusers.DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "dpm++_2m_karras":
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", use_karras_sigmas=True
        )
    if name == "ddim":
        return diffusers.DDIMScheduler.from_config(config)
    raise UnsupportedModelError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULER_NAMES)}")
