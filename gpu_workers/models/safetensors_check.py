"""Validate a safetensors file's header before anything allocates memory for it.

A safetensors file is an 8-byte little-endian header length, a JSON header, then a flat byte buffer.
The format cannot run code, but a hostile header can still ask a loader to allocate a huge header
string or to read tensors at offsets outside the file. We read only the header, with a hard size bound,
and check every entry (known dtype, byte length matching the shape, offsets inside the buffer, no
overlaps or holes) so a malformed file is refused with a clear message instead of crashing a worker.
The parsed header is also what the LoRA/family detectors read: keys and shapes without loading weights.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_workers.models.errors import UnsafeModelFileError

#: The reference implementation refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000

#: Bits per element for every dtype the safetensors spec names.
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int]


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a safetensors file declares, checked against its real size."""

    path: Path
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return list(self.tensors)


def _refuse(path: Path, why: str) -> UnsafeModelFileError:
    return UnsafeModelFileError(f"{path.name}: refused, not a valid safetensors file ({why})")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def read_safetensors_header(
    path: str | os.PathLike[str], *, max_header_bytes: int = MAX_HEADER_BYTES
) -> SafetensorsHeader:
    """Parse and validate the header of ``path``; raise ``UnsafeModelFileError`` if anything is off."""
    file_path = Path(path)
    file_size = file_path.stat().st_size
    if file_size < 8:
        raise _refuse(file_path, "shorter than the 8-byte header length")
    with file_path.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > max_header_bytes:
            raise _refuse(
                file_path, f"header of {header_len} bytes exceeds the {max_header_bytes}-byte limit"
            )
        if 8 + header_len > file_size:
            raise _refuse(
                file_path, f"header of {header_len} bytes runs past the end of the {file_size}-byte file"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _refuse(file_path, f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _refuse(file_path, "header is not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _refuse(file_path, "__metadata__ must map strings to strings")

    data_len = file_size - 8 - header_len
    tensors = {name: _check_entry(file_path, name, entry, data_len) for name, entry in header.items()}
    _check_layout(file_path, tensors, data_len)
    return SafetensorsHeader(path=file_path, tensors=tensors, metadata=metadata)


def _check_entry(path: Path, name: str, entry: object, data_len: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _refuse(path, f"tensor {name!r} is not an object")
    dtype = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _refuse(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _refuse(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise _refuse(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise _refuse(path, f"tensor {name!r} offsets {begin}..{end} lie outside the {data_len}-byte buffer")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise _refuse(path, f"tensor {name!r} declares {end - begin} bytes for shape {shape} of {dtype}")
    return TensorInfo(dtype=dtype, shape=tuple(shape), offsets=(begin, end))


def _check_layout(path: Path, tensors: Mapping[str, TensorInfo], data_len: int) -> None:
    """Tensors must tile the buffer exactly, as the reference loader requires: no overlap, no hole."""
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: item[1].offsets):
        begin, end = info.offsets
        if begin != position:
            kind = "overlaps the previous tensor" if begin < position else "leaves a gap before it"
            raise _refuse(path, f"tensor {name!r} {kind}")
        position = end
    if position != data_len:
        raise _refuse(path, f"{data_len - position} trailing bytes are not covered by any tensor")
