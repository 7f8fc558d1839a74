"""Tell what a weights file is from its header alone: LoRA key format and base model family.

The catalog runs this on downloads (to label a LoRA and refuse one that does not fit its base) and the
workers run it before loading. Only keys, shapes and the string metadata are read, never the tensors,
so it is cheap and safe on untrusted files. Heuristics are ordered from most to least reliable:
metadata written by the trainer, then architecture-specific key names, then tensor shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from gpu_workers.models.safetensors_check import SafetensorsHeader, TensorInfo, read_safetensors_header

LoraFormat = Literal["kohya", "diffusers", "peft", "unknown"]
Family = Literal["sd15", "sdxl", "flux", "video"]
FAMILIES: tuple[Family, ...] = ("sd15", "sdxl", "flux", "video")

#: diffusers pipeline class (``model_index.json``) -> family.
PIPELINE_FAMILIES: Mapping[str, Family] = {
    "StableDiffusionPipeline": "sd15",
    "StableDiffusionImg2ImgPipeline": "sd15",
    "StableDiffusionControlNetPipeline": "sd15",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLControlNetPipeline": "sdxl",
    "FluxPipeline": "flux",
    "FluxImg2ImgPipeline": "flux",
    "FluxControlNetPipeline": "flux",
    "AnimateDiffPipeline": "video",
    "AnimateDiffVideoToVideoPipeline": "video",
}

_LORA_MARKERS = ("lora_down", "lora_up", "lora_A", "lora_B", "lora.down", "lora.up", "lora_linear_layer")
_DIFFUSERS_PREFIXES = ("unet.", "text_encoder.", "text_encoder_2.", "transformer.")


def is_lora(keys: Iterable[str]) -> bool:
    return any(marker in key for key in keys for marker in _LORA_MARKERS)


def lora_format(keys: Iterable[str]) -> LoraFormat:
    """Which naming convention a LoRA state dict uses.

    kohya (sd-scripts, most CivitAI files): ``lora_unet_<path_with_underscores>.lora_down.weight``;
    diffusers: component-prefixed module paths (``unet.``, ``transformer.`` ...); peft: a raw
    ``PeftModel`` dump (``base_model.model.`` prefix, or bare module paths with ``lora_A``/``lora_B``).
    """
    key_list = [k for k in keys if any(m in k for m in _LORA_MARKERS) or k.endswith(".alpha")]
    if not key_list:
        return "unknown"
    if any(
        k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_transformer_"))
        for k in key_list
    ):
        return "kohya"
    if any(k.startswith("base_model.model.") for k in key_list):
        return "peft"
    if any(k.startswith(_DIFFUSERS_PREFIXES) for k in key_list):
        return "diffusers"
    if any(".lora_A." in k or ".lora_B." in k for k in key_list):
        return "peft"
    return "unknown"


def _family_from_metadata(metadata: Mapping[str, str]) -> Family | None:
    """sd-scripts writes ``ss_base_model_version`` (``sd_v1``, ``sdxl_base_v1-0``, ``flux1``) and the
    modelspec convention ``modelspec.architecture`` (``stable-diffusion-xl-v1-base/lora``...)."""
    text = " ".join(metadata.get(k, "") for k in ("modelspec.architecture", "ss_base_model_version")).lower()
    if "flux" in text:
        return "flux"
    if "sdxl" in text or "stable-diffusion-xl" in text:
        return "sdxl"
    if "sd_v1" in text or "stable-diffusion-v1" in text:
        return "sd15"
    return None


def _cross_attention_width(tensors: Mapping[str, TensorInfo]) -> int | None:
    """Input width of a cross-attention key projection: 768 for SD 1.x, 2048 for SDXL."""
    for name, info in tensors.items():
        normalized = name.replace("_", ".")
        if (
            "attn2.to.k" in normalized
            and ("lora.down" in normalized or "lora.A" in normalized)
            and info.shape
        ):
            return info.shape[-1]
    return None


def family_from_keys(
    tensors: Mapping[str, TensorInfo], metadata: Mapping[str, str] | None = None
) -> Family | None:
    """Base family of a LoRA or single-file checkpoint, or ``None`` when the evidence is inconclusive."""
    from_metadata = _family_from_metadata(metadata or {})
    if from_metadata:
        return from_metadata
    keys = list(tensors)
    # Separators differ between formats (kohya uses "_"), so match on a normalised form.
    normalized = [k.replace(".", "_") for k in keys]
    if any(
        marker in k
        for k in normalized
        for marker in (
            "double_blocks_",
            "single_blocks_",
            "single_transformer_blocks_",
            "context_embedder",
            "x_embedder",
        )
    ):
        return "flux"
    if any("motion_modules" in k for k in normalized):
        return "video"
    if any(
        marker in k
        for k in normalized
        for marker in (
            "lora_te2_",
            "text_encoder_2_",
            "conditioner_embedders_1",
            "add_embedding_linear",
            "label_emb_0",
        )
    ):
        return "sdxl"
    if any(k.startswith(("cond_stage_model_", "lora_te_")) for k in normalized):
        return "sd15"
    width = _cross_attention_width(tensors)
    if width is not None and width >= 2048:
        return "sdxl"
    if width == 768:
        return "sd15"
    # Block layout: SD 1.x has cross-attention in the first down block and one transformer per
    # attention; SDXL has none in the first block and stacks several (transformer_blocks_1 ...).
    if any(re.search(r"(down_blocks_0_attentions|input_blocks_1_1_)", k) for k in normalized):
        return "sd15"
    if any(re.search(r"transformer_blocks_[1-9]", k) for k in normalized):
        return "sdxl"
    return None


def pipeline_family(model_dir: Path) -> Family | None:
    """Family of a diffusers folder, from ``model_index.json``'s pipeline class name."""
    index = model_dir / "model_index.json"
    if not index.is_file():
        return None
    class_name = json.loads(index.read_text()).get("_class_name", "")
    return PIPELINE_FAMILIES.get(class_name)


def detect_file(path: Path) -> tuple[SafetensorsHeader, LoraFormat | None, Family | None]:
    """Check a safetensors file and report (header, LoRA format or ``None`` if not a LoRA, family)."""
    header = read_safetensors_header(path)
    fmt = lora_format(header.keys) if is_lora(header.keys) else None
    return header, fmt, family_from_keys(header.tensors, header.metadata)
