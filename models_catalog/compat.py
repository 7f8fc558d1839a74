""" "Will it load": can this LoRA be applied to this base model?

First the families must match (an SDXL LoRA cannot patch an SD 1.5 UNet). When both files are on this
machine we go further and compare shapes from the safetensors headers alone: every layer the LoRA
targets must exist in the base model's denoiser with the same input and output width. That catches a
LoRA labelled "SD 1.5" that was really trained for another model size, before a worker tries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gpu_workers.models.detect import detect_file
from gpu_workers.models.errors import ModelError
from gpu_workers.models.safetensors_check import TensorInfo, read_safetensors_header

from .families import RUNNABLE_FAMILIES, Family

DENOISER_FILES = (
    "unet/diffusion_pytorch_model.safetensors",
    "transformer/diffusion_pytorch_model.safetensors",
)
_DOWN = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight")
_UP = (".lora_up.weight", ".lora_B.weight", ".lora.up.weight")
_DENOISER_PREFIXES = ("unet.", "transformer.", "base_model.model.")


@dataclass(frozen=True)
class Compatibility:
    ok: bool
    reason: str
    checked_shapes: bool = False


def family_label(family: str) -> str:
    return Family(family).label if family in Family.values else family


def with_article(label: str) -> str:
    """'an SDXL', 'an SD 1.5', 'a Flux.1': the article follows how the name is spoken."""
    spelled_out = label.startswith("SD")  # "ess-dee"
    return f"{'an' if spelled_out or label[:1].upper() in 'AEIOU' else 'a'} {label}"


def family_compatibility(
    *, lora_name: str, lora_family: str, model_name: str, model_family: str
) -> Compatibility:
    if lora_family not in RUNNABLE_FAMILIES:
        return Compatibility(
            False, f"{lora_name}'s base family is unknown, so Kizy cannot tell which models it fits"
        )
    if model_family not in RUNNABLE_FAMILIES:
        return Compatibility(False, f"{model_name}'s family is unknown, so no LoRA can be checked against it")
    if lora_family != model_family:
        return Compatibility(
            False,
            f"{lora_name} is {with_article(family_label(lora_family))} LoRA and {model_name} is "
            f"{with_article(family_label(model_family))} "
            "model; LoRAs only work on the family they were trained for. Pick "
            f"{with_article(family_label(model_family))} "
            f"LoRA, or {with_article(family_label(lora_family))} model.",
        )
    return Compatibility(True, f"both are {family_label(model_family)}")


def _lora_modules(tensors: Mapping[str, TensorInfo]) -> dict[str, tuple[int, int]]:
    """{module key: (in width, out width)} of the denoiser layers a LoRA patches (text encoders skipped)."""
    downs: dict[str, int] = {}
    ups: dict[str, int] = {}
    for key, info in tensors.items():
        for suffix in _DOWN:
            if key.endswith(suffix) and len(info.shape) >= 2:
                downs[key[: -len(suffix)]] = info.shape[1]
        for suffix in _UP:
            if key.endswith(suffix) and info.shape:
                ups[key[: -len(suffix)]] = info.shape[0]
    modules = {}
    for module, width_in in downs.items():
        if module.startswith(("lora_te", "text_encoder")) or module not in ups:
            continue
        modules[module] = (width_in, ups[module])
    return modules


def _base_layers(base_dir: Path) -> dict[str, tuple[int, int]] | None:
    for relative in DENOISER_FILES:
        path = base_dir / relative
        if path.is_file():
            header = read_safetensors_header(path)
            return {
                key[: -len(".weight")]: (info.shape[1], info.shape[0])
                for key, info in header.tensors.items()
                if key.endswith(".weight") and len(info.shape) >= 2
            }
    return None


def _match(module: str, layers: Mapping[str, tuple[int, int]], kohya_index: Mapping[str, str]) -> str | None:
    if module.startswith("lora_unet_") or module.startswith("lora_transformer_"):
        return kohya_index.get(module.split("_", 2)[2])
    for prefix in _DENOISER_PREFIXES:
        if module.startswith(prefix):
            module = module[len(prefix) :]
            break
    return module if module in layers else None


def shape_compatibility(
    *, lora_file: Path, base_dir: Path, lora_name: str, model_name: str
) -> Compatibility | None:
    """Compare layer widths; None when there is nothing to compare (e.g. original-SD kohya names)."""
    try:
        lora_header = read_safetensors_header(lora_file)
        layers = _base_layers(base_dir)
    except ModelError as exc:
        return Compatibility(False, f"cannot read the weights: {exc}", checked_shapes=True)
    if not layers:
        return None
    kohya_index = {name.replace(".", "_"): name for name in layers}
    modules = _lora_modules(lora_header.tensors)
    matched = 0
    for module, (width_in, width_out) in sorted(modules.items()):
        layer = _match(module, layers, kohya_index)
        if layer is None:
            if module.startswith(
                ("lora_unet_input_blocks", "lora_unet_middle_block", "lora_unet_output_blocks")
            ):
                continue  # original-SD naming: diffusers converts these at load time
            return Compatibility(
                False,
                f"{lora_name} patches layer {module!r}, which {model_name} does not have: it was trained "
                "for a "
                "different architecture",
                checked_shapes=True,
            )
        base_in, base_out = layers[layer]
        if (width_in, width_out) != (base_in, base_out):
            return Compatibility(
                False,
                f"{lora_name} expects layer {layer!r} to be {width_in}→{width_out} wide but in {model_name} "
                "it is "
                f"{base_in}→{base_out}: it was trained for a different model size, so it would fail to load",
                checked_shapes=True,
            )
        matched += 1
    if not matched:
        return None
    return Compatibility(
        True, f"all {matched} layers it patches exist in {model_name} with matching shapes", True
    )


def detect_lora(path: Path) -> tuple[str, str]:
    """(format, family) of a LoRA file from its header; ("", "") if it is not a LoRA at all."""
    _header, fmt, family = detect_file(path)
    if fmt is None:
        return "", ""
    return fmt, family or ""
