"""Checkpoint keys follow the weights' content: replacing the file behind a `local:` reference makes
the nodes downstream of load_model / apply_lora run again instead of serving outputs of the old file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
from kizy_testpack.counters import RUNS
from kizy_testpack.nodes import NODES as TESTPACK
from pydantic import BaseModel, Field
from safetensors.numpy import save_file

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.executor import run_graph
from gpu_workers.models.cache import PipelineCache
from gpu_workers.models.store import ModelStore
from gpu_workers.nodes.builtin import NODES
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import Node, NodeContext

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


class WeightsEcho(Node):
    """Stands for controlnet / upscale: a node whose weights come through an asset reference."""

    type: ClassVar[str] = "weights_echo"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Weights echo"
    description: ClassVar[str] = "Counts its runs."
    runs: ClassVar[int] = 0

    class Inputs(BaseModel):
        weights: str = Field(description="Asset reference.", json_schema_extra={"kizy_reference": "asset"})

    class Outputs(BaseModel):
        ref: str = Field(description="The reference it ran with.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        WeightsEcho.runs += 1
        return self.Outputs(ref=inputs.weights)


def test_replaced_controlnet_or_upscaler_weights_run_the_node_again_and_are_recorded(tmp_path: Path) -> None:
    root, artifacts = tmp_path / "store", MemoryArtifactStore()
    nodes = NodeRegistry.from_classes([WeightsEcho], pack="test")
    graph = {"nodes": {"up": {"type": "weights_echo", "inputs": {"weights": "local:upscaler"}}}, "outputs": ["up"]}
    weights = root / "local" / "upscaler.safetensors"
    weights.parent.mkdir(parents=True)
    WeightsEcho.runs = 0

    def run(job: str, value: float):
        if value:
            save_file({"w": np.full((2, 2), value, dtype=np.float32)}, str(weights))
            os.utime(weights, ns=(1, int(value * 1e9)))
        cache = PipelineCache(ModelStore(root), budget_bytes=1 << 30)
        return run_graph(graph, nodes, workspace_id="ws1", job_id=job, artifacts=artifacts,
                         models=cache.bind(artifacts=None, workspace_id="ws1"))

    first = run("j1", 1.0)
    assert first.reproducibility["assets"]["up.weights"] == {
        "ref": "local:upscaler", "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    run("j2", 0)
    assert WeightsEcho.runs == 1  # unchanged file: reused
    run("j3", 2.0)
    assert WeightsEcho.runs == 2  # replaced file: run again
