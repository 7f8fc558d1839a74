"""The worked `kizy-vignette` pack of docs/node-packs.md runs as written, so the page cannot drift."""

from __future__ import annotations

import re
import sys
import tomllib
import types
from pathlib import Path

from PIL import Image

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.executor import run_graph
from gpu_workers.nodes.builtin import NODES
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import ExecutionContext

DOC = (Path(__file__).resolve().parents[2] / "docs" / "node-packs.md").read_text()


def block(language: str, first_line: str) -> str:
    for code in re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL):
        if code.startswith(first_line):
            return str(code)
    raise AssertionError(f"no {language} block starting with {first_line!r} in docs/node-packs.md")


def test_the_documented_pyproject_declares_a_module_entry_point() -> None:
    project = tomllib.loads(block("toml", "# pyproject.toml"))["project"]
    assert project["name"] == "kizy-vignette" and project["version"] == "1.0.0"
    assert project["entry-points"]["kizy.nodes"] == {"vignette": "kizy_vignette.nodes"}


def test_the_documented_vignette_node_registers_and_darkens_the_corners(monkeypatch) -> None:
    module = types.ModuleType("kizy_vignette.nodes")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block("python", "# kizy_vignette/nodes.py"), "docs/node-packs.md", "exec"), module.__dict__)  # noqa: S102
    registry = NodeRegistry.from_classes(NODES, pack="kizy", pack_version="test")
    for cls in module.NODES:
        registry.register(cls, pack="kizy-vignette", pack_version="1.0.0")
    described = next(n for n in registry.describe() if n["type"] == "vignette")
    assert described["pack"] == "kizy-vignette" and described["inputs"]["properties"]["strength"]["maximum"] == 1.0

    artifacts = MemoryArtifactStore()
    photo = ExecutionContext(node_id="upload", workspace_id="demo", artifacts=artifacts).save_image(
        Image.new("RGB", (96, 64), (200, 180, 160)))
    graph = {
        "nodes": {
            "photo": {"type": "resize", "inputs": {"image": photo.model_dump(mode="json"), "width": 64, "height": 64}},
            "dark": {"type": "vignette", "inputs": {"image": {"node": "photo", "output": "image"}, "strength": 0.7}},
        },
        "outputs": ["dark"],
    }
    result = run_graph(graph, registry, workspace_id="demo", job_id="try-1", artifacts=artifacts)
    out = result.outputs["dark"]["image"]
    image = ExecutionContext(node_id="check", workspace_id="demo", artifacts=artifacts).load_image(
        type(photo).model_validate(out))
    assert image.size == (64, 64)
    corner, centre = sum(image.getpixel((0, 0))), sum(image.getpixel((32, 32)))
    assert corner < centre * 0.6  # darkened corners, centre kept
    assert result.reproducibility["nodes"]["dark"]["pack"] == "kizy-vignette"
