"""Import heavy libraries lazily and as ``Any``.

diffusers, transformers, spandrel and imageio-ffmpeg are only partly annotated (or not at all), so
under ``mypy --strict`` every call into them would need an ignore. Importing them through this one
function makes the boundary explicit: our own code is fully typed, theirs is ``Any``. Importing
inside functions also keeps ``import gpu_workers...`` cheap for the web process, which lists nodes
but never runs them.
"""

from __future__ import annotations

import importlib
from typing import Any


def untyped(module: str) -> Any:
    return importlib.import_module(module)
