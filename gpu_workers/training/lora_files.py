"""The files a training writes: the LoRA in diffusers format, the same weights in kohya naming, and the
optimiser state of a checkpoint, all as safetensors (nothing here ever unpickles, M1).

- diffusers format: what ``pipeline.save_lora_weights`` writes (``unet.``/``transformer.`` prefixed
  peft keys plus the adapter config in the header), so ``load_lora_weights`` gets rank and alpha right.
- kohya format (sd-scripts, A1111, ComfyUI): ``lora_unet_<module_path_with_underscores>`` for UNets,
  ``lora_transformer_<...>`` for Flux, with ``.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from gpu_workers.models.lazy import untyped

DENOISER_NAME = {"sd15": "unet", "sdxl": "unet", "flux": "transformer"}
KOHYA_PREFIX = {"sd15": "lora_unet_", "sdxl": "lora_unet_", "flux": "lora_transformer_"}
BASE_MODEL_VERSION = {"sd15": "sd_v1", "sdxl": "sdxl_base_v1-0", "flux": "flux1"}


def pipeline_class(family: str) -> Any:
    diffusers = untyped("diffusers")
    return {
        "sd15": diffusers.StableDiffusionPipeline,
        "sdxl": diffusers.StableDiffusionXLPipeline,
        "flux": diffusers.FluxPipeline,
    }[family]


def diffusers_lora_bytes(
    family: str,
    peft_state: Mapping[str, torch.Tensor],
    adapter_config: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """The LoRA as diffusers writes it (through the pipeline's own ``save_lora_weights``)."""
    name = DENOISER_NAME[family]
    layers = untyped("diffusers.utils").convert_state_dict_to_diffusers(dict(peft_state))
    with tempfile.TemporaryDirectory(prefix="kizy-lora-") as folder:
        pipeline_class(family).save_lora_weights(
            folder,
            weight_name="lora.safetensors",
            safe_serialization=True,
            **{f"{name}_lora_layers": layers, f"{name}_lora_adapter_metadata": dict(adapter_config)},
        )
        data = (Path(folder) / "lora.safetensors").read_bytes()
    if metadata:
        data = with_metadata(data, metadata)
    return data


def header_metadata(data: bytes) -> dict[str, str]:
    """The string metadata of a safetensors file held in memory."""
    header_len = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
    return {str(k): str(v) for k, v in metadata.items()}


def with_metadata(data: bytes, extra: Mapping[str, str]) -> bytes:
    """Add string metadata to a safetensors file's header (the tensors are untouched)."""
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    header["__metadata__"] = {**header.get("__metadata__", {}), **{k: str(v) for k, v in extra.items()}}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + data[8 + header_len :]


def kohya_lora_bytes(
    family: str,
    peft_state: Mapping[str, torch.Tensor],
    *,
    alpha: float,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """The same weights in kohya/sd-scripts naming, with ``alpha`` stored per module."""
    prefix = KOHYA_PREFIX[family]
    kohya: dict[str, torch.Tensor] = {}
    for key, tensor in peft_state.items():
        module, _, kind = key.rpartition(".lora_")
        if not module or kind not in ("A.weight", "B.weight"):
            raise ValueError(f"unexpected key {key!r} in a peft LoRA state dict")
        name = prefix + module.replace(".", "_")
        kohya[f"{name}.{'lora_down' if kind == 'A.weight' else 'lora_up'}.weight"] = (
            tensor.detach().contiguous().cpu()
        )
        if kind == "A.weight":
            kohya[f"{name}.alpha"] = torch.tensor(float(alpha))
    header = {
        "ss_network_module": "networks.lora",
        "ss_base_model_version": BASE_MODEL_VERSION[family],
        "ss_network_alpha": f"{alpha:g}",
        **(metadata or {}),
    }
    return save(kohya, metadata={k: str(v) for k, v in header.items()})


def tensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=dict(metadata or {}))


def optimizer_bytes(state: Mapping[str, Any]) -> bytes:
    """``optimizer.state_dict()`` as safetensors: tensors by ``<param index>.<name>``, groups as JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors_bytes(
        tensors, {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    )


def optimizer_state(data: bytes) -> dict[str, Any]:
    meta = header_metadata(data)
    tensors = load(data)
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = tensor
    for index, values in json.loads(meta.get("scalars", "{}")).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}
