"""Running a diffusers pipeline inside a node: seeds, step reporting, cancellation, family checks."""

from __future__ import annotations

from typing import Any

from gpu_workers.diffusion.preview import latent_preview
from gpu_workers.sdk import ModelSpec, NodeContext, NodeError

FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL", "flux": "Flux", "video": "AnimateDiff video"}
IMAGE_FAMILIES = ("sd15", "sdxl", "flux")
VIDEO_FAMILIES = ("video",)
#: Latent patches are 8 pixels; Flux packs 2x2 latents into one token, so its sides need 16.
SIZE_MULTIPLE = {"sd15": 8, "sdxl": 8, "flux": 16, "video": 8}


def require_family(
    ctx: NodeContext, spec: ModelSpec, allowed: tuple[str, ...], what: str, instead: str
) -> None:
    """Fail with a sentence a user can act on when a node is given a model of the wrong family."""
    if spec.family in allowed:
        return
    from gpu_workers.models.cache import with_article

    *others, last = [FAMILY_NAMES[f] for f in allowed]
    names = f"{', '.join(others)} or {last}" if others else last
    kind = FAMILY_NAMES.get(spec.family, spec.family)
    raise NodeError(
        ctx.node_id,
        f"{what} needs {with_article(names)} model; {spec.ref} is {with_article(kind)} model. {instead}".strip(),
    )


def check_size(ctx: NodeContext, family: str, width: int, height: int) -> None:
    multiple = SIZE_MULTIPLE.get(family, 8)
    if width % multiple or height % multiple:
        raise NodeError(
            ctx.node_id,
            f"{FAMILY_NAMES.get(family, family)} models need width and height divisible by {multiple}; "
            f"got {width}x{height}",
        )


def fit_size(family: str, width: int, height: int) -> tuple[int, int]:
    """Largest size not above (width, height) that the family accepts."""
    multiple = SIZE_MULTIPLE.get(family, 8)
    return max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)


def generator(seed: int) -> Any:
    """A CPU generator: diffusers draws the initial noise on it, so a seed gives the same image on a
    CPU worker, a local GPU or a Modal container."""
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def prompt_kwargs(
    ctx: NodeContext, family: str, prompt: str, negative_prompt: str, guidance: float
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"prompt": prompt, "guidance_scale": guidance}
    if family == "flux":
        if negative_prompt:
            ctx.log("Flux models are guidance-distilled and ignore the negative prompt")
    else:
        kwargs["negative_prompt"] = negative_prompt or None
    return kwargs


class StepReporter:
    """``callback_on_step_end`` for diffusers: cancellation check and progress every step, a latent
    preview every ``preview_every`` steps and on the last one.

    The step count comes from the pipeline itself (``num_timesteps``), because img2img with strength
    s runs only about s x steps.
    """

    def __init__(
        self, ctx: NodeContext, family: str, *, steps: int, width: int, height: int, previews: int = 4
    ) -> None:
        self.ctx = ctx
        self.family = family
        self.steps = steps
        self.width = width
        self.height = height
        self.previews = max(1, previews)

    def __call__(
        self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        self.ctx.check_cancelled()
        total = int(getattr(pipe, "num_timesteps", 0) or self.steps)
        done = step + 1
        every = max(1, total // self.previews)
        preview = None
        if done % every == 0 or done == total:
            latents = callback_kwargs.get("latents")
            if latents is not None:
                preview = latent_preview(latents, self.family, height=self.height, width=self.width)
        self.ctx.progress(done, total, preview)
        return callback_kwargs
