"""Base-model families and how upstream vocabularies map onto them.

A family is what decides compatibility: a LoRA trained on SDXL cannot be applied to an SD 1.5 model.
Upstream names that Kizy cannot run (SD 2.x, SD 3, Wan video, Flux.2 ...) map to ``unknown``; the row is
kept and flagged so curators see it, but it is never offered by auto-pick.
"""

from __future__ import annotations

from django.db import models


class Family(models.TextChoices):
    SD15 = "sd15", "SD 1.5"
    SDXL = "sdxl", "SDXL"
    FLUX = "flux", "Flux.1"
    VIDEO = "video", "Video (AnimateDiff)"
    UNKNOWN = "unknown", "Unknown"


RUNNABLE_FAMILIES = frozenset({Family.SD15, Family.SDXL, Family.FLUX, Family.VIDEO})
RUNNABLE_FAMILY_CHOICES = [(value, Family(value).label) for value in sorted(RUNNABLE_FAMILIES)]

# CivitAI `baseModel` values (see shared/fixtures/civitai/enums.json). Pony, Illustrious and NoobAI are
# SDXL fine-tunes and load as SDXL; "Pony V7" is AuraFlow-based, so it is not listed.
CIVITAI_BASE_MODELS: dict[str, str] = {
    "SD 1.4": Family.SD15,
    "SD 1.5": Family.SD15,
    "SD 1.5 LCM": Family.SD15,
    "SD 1.5 Hyper": Family.SD15,
    "SDXL 0.9": Family.SDXL,
    "SDXL 1.0": Family.SDXL,
    "SDXL 1.0 LCM": Family.SDXL,
    "SDXL Lightning": Family.SDXL,
    "SDXL Hyper": Family.SDXL,
    "SDXL Turbo": Family.SDXL,
    "SDXL Distilled": Family.SDXL,
    "Pony": Family.SDXL,
    "Illustrious": Family.SDXL,
    "NoobAI": Family.SDXL,
    "Flux.1 S": Family.FLUX,
    "Flux.1 D": Family.FLUX,
    "Flux.1 Krea": Family.FLUX,
    "Flux.1 Kontext": Family.FLUX,
}

# Hugging Face base repositories (from `base_model:` tags and card data) -> family.
HF_BASE_REPOS: dict[str, str] = {
    "runwayml/stable-diffusion-v1-5": Family.SD15,
    "stable-diffusion-v1-5/stable-diffusion-v1-5": Family.SD15,
    "CompVis/stable-diffusion-v1-4": Family.SD15,
    "stabilityai/stable-diffusion-xl-base-1.0": Family.SDXL,
    "stabilityai/sdxl-turbo": Family.SDXL,
    "black-forest-labs/FLUX.1-dev": Family.FLUX,
    "black-forest-labs/FLUX.1-schnell": Family.FLUX,
    "guoyww/animatediff-motion-adapter-v1-5-2": Family.VIDEO,
}

# diffusers pipeline class (HF tag `diffusers:<Class>`) -> family.
HF_PIPELINES: dict[str, str] = {
    "StableDiffusionPipeline": Family.SD15,
    "StableDiffusionXLPipeline": Family.SDXL,
    "FluxPipeline": Family.FLUX,
    "AnimateDiffPipeline": Family.VIDEO,
}

# Sensible defaults per family, used when the source publishes none.
FAMILY_DEFAULTS: dict[str, dict[str, float | int]] = {
    Family.SD15: {"steps": 25, "guidance": 7.0, "width": 512, "height": 512},
    Family.SDXL: {"steps": 30, "guidance": 6.0, "width": 1024, "height": 1024},
    Family.FLUX: {"steps": 28, "guidance": 3.5, "width": 1024, "height": 1024},
    Family.VIDEO: {"steps": 25, "guidance": 7.5, "width": 512, "height": 512},
}


def civitai_family(base_model: str | None) -> tuple[str, bool]:
    """(family, flagged): flagged when the upstream name is missing or not one Kizy can run."""
    family = CIVITAI_BASE_MODELS.get((base_model or "").strip())
    return (family, False) if family else (Family.UNKNOWN, True)


def hf_family(*, tags: list[str], base_models: list[str]) -> tuple[str, bool]:
    for tag in tags:
        if tag.startswith("diffusers:") and tag.split(":", 1)[1] in HF_PIPELINES:
            return HF_PIPELINES[tag.split(":", 1)[1]], False
    for base in base_models:
        if base in HF_BASE_REPOS:
            return HF_BASE_REPOS[base], False
    return Family.UNKNOWN, True


class Rating(models.IntegerChoices):
    """CivitAI's nsfwLevel bits; a model's level is the OR of its images' levels."""

    UNRATED = 0, "Unrated"
    PG = 1, "PG"
    PG13 = 2, "PG-13"
    R = 4, "R"
    X = 8, "X"
    XXX = 16, "XXX"
    BLOCKED = 32, "Blocked"


def highest_rating(nsfw_level: int | None) -> int:
    """The strongest rating present in a CivitAI nsfwLevel bitmask (0 when unrated)."""
    level = int(nsfw_level or 0)
    return 1 << (level.bit_length() - 1) if level > 0 else 0


def rating_allowed(nsfw_level: int | None, maximum: int) -> bool:
    return highest_rating(nsfw_level) <= maximum


# The licence a fine-tune inherits from its base model (CivitAI publishes permissions, not licence names).
BASE_LICENSES: dict[str, str] = {
    Family.SD15: "creativeml-openrail-m",
    Family.SDXL: "openrail++",
    "Flux.1 D": "flux-1-dev-non-commercial-license",
    "Flux.1 Krea": "flux-1-dev-non-commercial-license",
    "Flux.1 Kontext": "flux-1-dev-non-commercial-license",
    "Flux.1 S": "apache-2.0",
}
NON_COMMERCIAL_LICENSES = frozenset(
    {
        "flux-1-dev-non-commercial-license",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nc-nd-4.0",
        "cc-by-nc-2.0",
    }
)
