"""Checkpoint keys follow the weights' content: replacing the file behind a `local:` reference makes
the nodes downstream of load_model / apply_lora run again instead of serving outputs of the old file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from kizy_testpack.counters import RUNS
from kizy_testpack.nodes import NODES as TESTPACK
from safetensors.numpy import save_file

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.executor import run_graph
from gpu_workers.models.cache import PipelineCache
from gpu_workers.models.store import ModelStore
from gpu_workers.nodes.builtin import NODES
from gpu_workers.registry import NodeRegistry

GRAPH = {
    "nodes": {
        "model": {"type": "load_model", "inputs": {"ref": "local:base"}},
        "style": {"type": "apply_lora", "inputs": {"model": {"node": "model", "output": "model"},
                                                   "lora": {"ref": "local:style", "weight": 0.5}}},
        "echo": {"type": "model_echo", "inputs": {"model": {"node": "style", "output": "model"}}},
    },
    "outputs": ["echo", "style"],
}


def registry() -> NodeRegistry:
    registry = NodeRegistry.from_classes(NODES, pack="kizy", pack_version="test")
    for cls in TESTPACK:
        registry.register(cls, pack="kizy-testpack", pack_version="test")
    return registry


def write_base(root: Path, value: float) -> Path:
    folder = root / "local" / "base"
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({"w": np.full((2, 2), value, dtype=np.float32)}, str(weights))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + int(value * 1e9)))  # a new mtime, always
    return weights


def write_lora(root: Path, value: float) -> Path:
    path = root / "local" / "style.safetensors"
    name = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    save_file({f"{name}.lora_A.weight": np.full((4, 32), value, dtype=np.float32),
               f"{name}.lora_B.weight": np.full((32, 4), value, dtype=np.float32)}, str(path))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + int(value * 1e9)))
    return path


def test_replaced_weights_are_not_served_stale_outputs(tmp_path: Path) -> None:
    root, artifacts, nodes = tmp_path / "store", MemoryArtifactStore(), registry()
    base, lora = write_base(root, 1.0), write_lora(root, 0.1)

    def run(job: str):
        cache = PipelineCache(ModelStore(root), budget_bytes=1 << 30)  # a fresh worker each time
        return run_graph(GRAPH, nodes, workspace_id="ws1", job_id=job, artifacts=artifacts,
                         models=cache.bind(artifacts=None, workspace_id="ws1"))

    first = run("j1")
    spec = first.outputs["style"]["model"]
    assert spec["sha256"] == ModelStore(root).sha256(base.parent.parent)
    assert spec["loras"][0]["sha256"] == hashlib.sha256(lora.read_bytes()).hexdigest()
    assert RUNS["model_echo"] == 1

    run("j2")
    assert RUNS["model_echo"] == 1  # same files: the stored output is reused

    write_base(root, 2.0)  # the operator replaces the base weights behind local:base
    replaced = run("j3")
    assert RUNS["model_echo"] == 2 and replaced.nodes["echo"]["status"] == "succeeded"
    assert replaced.outputs["style"]["model"]["sha256"] != spec["sha256"]

    write_lora(root, 0.2)  # and then the LoRA file behind local:style
    run("j4")
    assert RUNS["model_echo"] == 3
