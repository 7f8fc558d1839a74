"""The compute core stays Django-free, and the built-in pack's Pillow node works."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from kizy_testpack.nodes import MakeImage
from PIL import Image

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.nodes.builtin import NODES as BUILTIN_NODES
from gpu_workers.nodes.builtin.core import Resize
from gpu_workers.registry import NodeRegistry
from tests.gpu_workers.helpers import run

REPO = Path(__file__).resolve().parents[2]


def test_core_modules_import_nothing_from_django() -> None:
    code = (
        "import sys\n"
        "import gpu_workers.sdk, gpu_workers.artifacts, gpu_workers.registry, gpu_workers.graph\n"
        "import gpu_workers.executor, gpu_workers.backends.local\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "leaked = sorted(roots & {'django', 'rest_framework', 'celery', 'channels'})\n"
        "assert not leaked, leaked\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)  # noqa: S603 (fixed command)


def test_builtin_resize(store: MemoryArtifactStore) -> None:
    assert Resize in BUILTIN_NODES
    registry = NodeRegistry.from_classes([MakeImage, Resize])
    graph = {
        "nodes": {
            "img": {"type": "make_image", "inputs": {"width": 40, "height": 20, "color": "#00ff00"}},
            "small": {
                "type": "resize",
                "inputs": {
                    "image": {"node": "img", "output": "image"},
                    "width": 10,
                    "height": 30,
                    "method": "bicubic",
                },
            },
        },
        "outputs": ["small"],
    }
    ref = run(graph, registry, store).outputs["small"]["image"]
    assert (ref["width"], ref["height"]) == (10, 30)
    image = Image.open(io.BytesIO(store.get(ref["key"])))
    assert image.size == (10, 30) and image.getpixel((5, 5)) == (0, 255, 0)
