"""Built-in nodes retry what is worth retrying: the Hub not answering, and CUDA running out of memory
(after the warm pipelines are dropped). A missing or private model still fails at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.executor import run_graph
from gpu_workers.models.cache import PipelineCache
from gpu_workers.models.errors import ModelNotInstalledError, ModelStoreUnreachable
from gpu_workers.models.store import ModelStore, is_network_error
from gpu_workers.nodes.builtin import NODES
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import ModelSpec, NodeError, RecordingEventSink

REGISTRY = NodeRegistry.from_classes(NODES, pack="kizy", pack_version="test")
LOAD = {"nodes": {"m": {"type": "load_model", "inputs": {"ref": "hf:owner/tiny-sd15"}}}, "outputs": ["m"]}


class HubAnswer(Exception):
    """Shaped like huggingface_hub's HfHubHTTPError: carries the HTTP response."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status} Client Error for url https://hub.example/api/models/owner/tiny-sd15")
        self.response = type("Response", (), {"status_code": status})()


class ConnectError(Exception):
    """Named like httpx.ConnectError, which huggingface_hub raises when the Hub cannot be reached."""


def diffusers_folder(root: Path) -> Path:
    folder = root / "snapshot"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    return folder


class FlakyHub(ModelStore):
    """A real ModelStore whose Hub raises ``failures`` (one per network fetch) before it answers."""

    def __init__(self, root: Path, failures: list[BaseException]) -> None:
        super().__init__(root)
        self.failures = failures
        self.fetches = 0
        self.folder = diffusers_folder(root)

    def _hf_fetch(self, parsed: Any, *, local_only: bool) -> Path:
        if local_only:
            raise FileNotFoundError("not in the local cache")
        self.fetches += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.folder


def run(store: ModelStore, graph: dict = LOAD, **kwargs: Any):
    sink = RecordingEventSink()
    cache = PipelineCache(store, budget_bytes=1 << 30)
    result = run_graph(graph, REGISTRY, workspace_id="ws1", job_id="j1", artifacts=MemoryArtifactStore(),
                       models=cache.bind(artifacts=None, workspace_id="ws1"), events=sink,
                       retry_backoff_s=0.0, **kwargs)
    return result, sink


def test_network_errors_are_told_apart_from_answers() -> None:
    assert is_network_error(ConnectError("connection refused"))
    assert is_network_error(ConnectionRefusedError())
    assert is_network_error(HubAnswer(503)) and is_network_error(HubAnswer(429))
    wrapped = RuntimeError("hub failed")
    wrapped.__cause__ = TimeoutError("read timed out")
    assert is_network_error(wrapped)
    assert not is_network_error(HubAnswer(404)) and not is_network_error(HubAnswer(401))
    assert not is_network_error(ValueError("bad revision"))


def test_an_unreachable_hub_is_retried_and_the_job_goes_on(tmp_path: Path) -> None:
    store = FlakyHub(tmp_path, [ConnectError("[Errno 111] Connection refused"), HubAnswer(502)])
    result, sink = run(store)
    assert result.outputs["m"]["model"]["family"] == "sd15"
    assert result.nodes["m"]["attempts"] == 3 and store.fetches == 3
    logs = [event[2] for event in sink.of_kind("log")]
    assert "attempt 1 failed" in logs[0] and "could not fetch hf:owner/tiny-sd15" in logs[0]


def test_a_missing_model_fails_at_once(tmp_path: Path) -> None:
    store = FlakyHub(tmp_path, [HubAnswer(404)])
    with pytest.raises(NodeError) as failed:
        run(store)
    assert failed.value.states["m"]["attempts"] == 1 and store.fetches == 1
    assert "404" in str(failed.value) and 'Node "m"' in str(failed.value)


def test_retries_stop_at_max_retries_with_the_network_error(tmp_path: Path) -> None:
    store = FlakyHub(tmp_path, [ConnectError("refused")] * 5)
    with pytest.raises(NodeError, match="could not fetch"):
        run(store)
    assert store.fetches == 3  # max_retries = 2


def test_the_store_raises_the_retryable_error_for_a_dead_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreUnreachable) as raised:
        ModelStore(tmp_path, hf_endpoint="http://127.0.0.1:9").resolve("hf:owner/repo")
    assert isinstance(raised.value, ModelNotInstalledError)  # still "not installed" for the catalog


class OutOfMemoryModels:
    """A model provider whose pipelines do not fit: every load raises CUDA's out-of-memory error."""

    def __init__(self) -> None:
        self.loads = 0
        self.freed = 0

    def pipeline(self, spec: ModelSpec, task: str) -> Any:
        import torch

        self.loads += 1
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def resolve(self, ref: str) -> Path:
        raise AssertionError("not used")

    def free_memory(self) -> None:
        self.freed += 1


def test_out_of_memory_frees_the_cache_and_is_retried() -> None:
    models = OutOfMemoryModels()
    graph = {"nodes": {"draw": {"type": "text_to_image", "inputs": {
        "model": {"ref": "local:sd15", "family": "sd15"}, "prompt": "x", "width": 64, "height": 64, "steps": 1}}},
        "outputs": ["draw"]}
    sink = RecordingEventSink()
    with pytest.raises(NodeError) as failed:
        run_graph(graph, REGISTRY, workspace_id="ws1", job_id="j1", artifacts=MemoryArtifactStore(), models=models,
                  events=sink, retry_backoff_s=0.0)
    assert models.loads == 3 and models.freed == 3  # each attempt first gave the memory back
    assert "ran out of memory" in str(failed.value) and failed.value.states["draw"]["attempts"] == 3
    assert len(sink.of_kind("log")) == 2  # "attempt 1 failed ... retrying", "attempt 2 ..."
