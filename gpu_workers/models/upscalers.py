"""Load super-resolution weights (ESRGAN family: RRDBNet, Real-ESRGAN Compact, ...) with spandrel.

spandrel detects the architecture from the state dict, so any ESRGAN-family ``.safetensors`` works
without per-model code. Two traps (see notes/FEASIBILITY.md):

- spandrel's PyPI metadata pulls torchvision, which breaks diffusers beside the CPU torch build, so it
  is installed with ``--no-deps``. Its LaMa and RestoreFormer architectures import torchvision at
  module import time; a stand-in module is placed in ``sys.modules`` only while spandrel imports and
  removed right after, so nothing else ever sees a fake torchvision. Those two architectures raise a
  clear error if a file turns out to be one of them; ESRGAN and Compact never touch torchvision.
- Weights are read with ``safetensors`` here and handed to spandrel as a state dict: spandrel's own
  loader would accept pickle files.
"""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

from gpu_workers.models.errors import UnsupportedModelError
from gpu_workers.models.lazy import untyped
from gpu_workers.models.store import refuse_pickle

_IMPORT_LOCK = threading.Lock()
_spandrel: Any = None


def _unavailable(*_args: object, **_kwargs: object) -> Any:
    raise UnsupportedModelError("this upscaler architecture needs torchvision, which Kizy does not install")


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = type("InterpolationMode", (), {})  # type: ignore[attr-defined]
    functional.rotate = _unavailable  # type: ignore[attr-defined]
    functional.normalize = _unavailable  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    return {m.__name__: m for m in (root, transforms, functional)}


def import_spandrel() -> Any:
    """Import spandrel once, with the torchvision stand-in present only during that import."""
    global _spandrel
    with _IMPORT_LOCK:
        if _spandrel is not None:
            return _spandrel
        if "spandrel" in sys.modules:
            _spandrel = sys.modules["spandrel"]
            return _spandrel
        stand_in = _torchvision_stand_in()
        installed = [name for name in stand_in if name not in sys.modules]
        sys.modules.update({name: stand_in[name] for name in installed})
        try:
            spandrel = untyped("spandrel")
        finally:
            for name in installed:
                sys.modules.pop(name, None)
        _spandrel = spandrel
        return spandrel


def load_upscaler(path: Path, device: str = "cpu") -> Any:
    """A spandrel ``ImageModelDescriptor`` (``.model``, ``.scale``, callable on NCHW 0..1 tensors)."""
    from safetensors.torch import load_file

    refuse_pickle(path)
    spandrel = import_spandrel()
    state = load_file(str(path))
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_state_dict(state)
    except spandrel.UnsupportedModelError as exc:
        raise UnsupportedModelError(f"{path.name} is not an upscaler architecture Kizy recognises") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UnsupportedModelError(f"{path.name} is a {descriptor.architecture.name} model, not an upscaler")
    if descriptor.purpose != "SR":
        raise UnsupportedModelError(
            f"{path.name} is a {descriptor.purpose} model, not a super-resolution upscaler"
        )
    return descriptor.eval()
