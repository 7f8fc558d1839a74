"""The local backend runs a JSON payload; stores keep keys safe and writes atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kizy_testpack.counters import RUNS

from gpu_workers.artifacts import (
    ArtifactNotFound,
    FilesystemArtifactStore,
    InvalidArtifactKey,
    MemoryArtifactStore,
    artifact_store_from_config,
)
from gpu_workers.backends.base import JobPayload
from gpu_workers.backends.local import LocalBackend
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import RecordingEventSink

GRAPH = {
    "nodes": {
        "red": {"type": "make_image", "inputs": {"width": 8, "height": 8}},
        "cyan": {"type": "invert_image", "inputs": {"image": {"node": "red", "output": "image"}}},
    },
    "outputs": ["cyan"],
}


def test_local_backend_runs_a_payload_that_survives_json(registry: NodeRegistry, tmp_path: Path) -> None:
    payload = JobPayload(
        job_id="job-1", workspace_id="ws1", graph=GRAPH, storage={"kind": "filesystem", "root": str(tmp_path)}
    )
    crossed = JobPayload.model_validate_json(payload.model_dump_json())
    sink = RecordingEventSink()

    result = LocalBackend(registry).submit(crossed, events=sink)

    key = result.outputs["cyan"]["image"]["key"]
    assert (tmp_path / key).is_file()
    assert json.loads(json.dumps(result.as_dict())) == result.as_dict()
    assert [e[1] for e in sink.of_kind("node_finished")] == ["red", "cyan"]

    LocalBackend(registry).submit(crossed.model_copy(update={"job_id": "job-2"}))
    assert RUNS == {"make_image": 1, "invert_image": 1}


def test_payload_refuses_ids_that_are_not_key_safe() -> None:
    with pytest.raises(ValueError, match="workspace_id"):
        JobPayload(job_id="j", workspace_id="../other", graph=GRAPH, storage={"kind": "memory"})


@pytest.mark.parametrize("store_kind", ["memory", "filesystem"])
def test_stores_round_trip_and_refuse_unsafe_keys(store_kind: str, tmp_path: Path) -> None:
    store = MemoryArtifactStore() if store_kind == "memory" else FilesystemArtifactStore(tmp_path / "root")
    store.put("ws/a/artifacts/x.png", b"bytes", "image/png")
    store.put_json("ws/a/checkpoints/c.json", {"b": 1, "a": [1, 2]})

    assert store.get("ws/a/artifacts/x.png") == b"bytes"
    assert store.get_json("ws/a/checkpoints/c.json") == {"a": [1, 2], "b": 1}
    assert store.exists("ws/a/artifacts/x.png") and not store.exists("ws/a/artifacts/y.png")
    with pytest.raises(ArtifactNotFound):
        store.get("ws/a/artifacts/y.png")
    for bad in ["../etc/passwd", "/abs/path", "ws/a/../b", "ws//a", "ws/a b"]:
        with pytest.raises(InvalidArtifactKey):
            store.put(bad, b"x", "text/plain")
    assert not (tmp_path / "etc").exists()


def test_filesystem_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path)
    store.put("ws/a/artifacts/x.bin", b"1", "application/octet-stream")
    store.put("ws/a/artifacts/x.bin", b"2", "application/octet-stream")
    assert [p.name for p in (tmp_path / "ws/a/artifacts").iterdir()] == ["x.bin"]
    assert store.get("ws/a/artifacts/x.bin") == b"2"


def test_unknown_storage_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown storage kind 's4'"):
        artifact_store_from_config({"kind": "s4"})
