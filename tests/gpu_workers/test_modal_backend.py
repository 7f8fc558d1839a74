"""The Modal app's method bodies run in-process with `.local()`; without a token the backend fails fast."""
from __future__ import annotations

import pytest

from gpu_workers.artifacts import FilesystemArtifactStore
from gpu_workers.backends.base import JobPayload
from gpu_workers.backends.modal_backend import ModalBackend, ModalNotConfigured
from gpu_workers.backends.remote import replay
from gpu_workers.sdk import NodeError, RecordingEventSink

GRAPH = {
    "nodes": {
        "img": {"type": "make_image", "inputs": {"width": 6, "height": 4, "color": "#000000"}},
        "inv": {"type": "invert_image", "inputs": {"image": {"node": "img", "output": "image"}}},
    },
    "outputs": ["inv"],
}


@pytest.fixture
def worker(monkeypatch):
    monkeypatch.setenv("KIZY_NODE_PACKS", "kizy,kizy-testpack")
    from gpu_workers.backends.modal_app import GpuWorker

    return GpuWorker()


def payload(tmp_path, graph=GRAPH) -> dict:
    return JobPayload(job_id="job-1", workspace_id="ws-1", graph=graph,
                      storage={"kind": "filesystem", "root": str(tmp_path)}).model_dump(mode="json")


def test_modal_method_streams_events_and_the_result(worker, tmp_path):
    sink = RecordingEventSink()
    result = replay(iter(worker.run.local(payload(tmp_path))), sink, lambda: False)
    image = result.outputs["inv"]["image"]
    assert (image["width"], image["height"]) == (6, 4)
    assert FilesystemArtifactStore(tmp_path).exists(image["key"])
    assert [e[1] for e in sink.of_kind("node_started")] == ["img", "inv"]


def test_a_failing_node_comes_back_as_node_error(worker, tmp_path):
    graph = {"nodes": {"bad": {"type": "fail_always", "inputs": {"message": "boom"}}}, "outputs": ["bad"]}
    with pytest.raises(NodeError) as raised:
        replay(iter(worker.run.local(payload(tmp_path, graph))), None, lambda: False)
    assert raised.value.node_id == "bad" and "boom" in str(raised.value)


def test_missing_token_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "none.toml"))
    job = JobPayload(job_id="j", workspace_id="w", graph=GRAPH, storage={"kind": "s3", "bucket": "b"})
    with pytest.raises(ModalNotConfigured, match="modal token new"):
        ModalBackend().submit(job)


def test_filesystem_storage_is_refused_for_modal(monkeypatch):
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-x")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-x")
    job = JobPayload(job_id="j", workspace_id="w", graph=GRAPH, storage={"kind": "django"})
    with pytest.raises(ModalNotConfigured, match="S3/R2"):
        ModalBackend().submit(job)
