"""The Modal app's method bodies run in-process with `.local()`; without a token the backend fails fast."""
from __future__ import annotations

import time

import pytest

from gpu_workers.artifacts import FilesystemArtifactStore
from gpu_workers.backends.base import JobPayload
from gpu_workers.backends.modal_backend import ModalBackend, ModalNotConfigured
from gpu_workers.backends.remote import RemoteJobError, replay
from gpu_workers.sdk import JobCanceled, NodeError, RecordingEventSink

GRAPH = {
    "nodes": {
        "img": {"type": "make_image", "inputs": {"width": 6, "height": 4, "color": "#000000"}},
        "inv": {"type": "invert_image", "inputs": {"image": {"node": "img", "output": "image"}}},
    },
    "outputs": ["inv"],
}


@pytest.fixture(scope="session")
def container_store(tmp_path_factory):
    return tmp_path_factory.mktemp("modal-volume")


@pytest.fixture
def worker(monkeypatch, container_store, modal_cancel_flags):
    monkeypatch.setenv("KIZY_NODE_PACKS", "kizy,kizy-testpack")
    monkeypatch.setenv("KIZY_MODEL_STORE", str(container_store))
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


def test_an_error_outside_any_node_comes_back_with_its_message(worker, tmp_path):
    job = dict(payload(tmp_path), storage={"kind": "filesystem"})  # no root: the container cannot store
    with pytest.raises(RemoteJobError, match="filesystem storage needs a 'root' folder"):
        replay(iter(worker.run.local(job)), None, lambda: False)


SLOW = {"nodes": {"slow": {"type": "slow_steps", "inputs": {"label": "modal-cancel", "steps": 400,
                                                             "delay_s": 0.01}}}, "outputs": ["slow"]}


def test_a_cancel_on_the_site_reaches_the_container_which_stops_within_a_step(worker, modal_cancel_flags, tmp_path):
    from kizy_testpack.counters import STEPS

    from gpu_workers.backends.modal_backend import request_remote_cancel

    STEPS["modal-cancel"] = 0
    seen: list[int] = []
    received: list[dict] = []

    def recorded():  # what crossed the wire, read on by replay's reader thread after the cancel
        for item in worker.run.local(payload(tmp_path, SLOW)):
            received.append(item)
            yield item

    class Sink(RecordingEventSink):
        def step(self, node_id, i, n, preview_png):
            seen.append(i)

    with pytest.raises(JobCanceled):
        replay(recorded(), Sink(), lambda: len(seen) >= 3,
               on_cancel=lambda: request_remote_cancel(modal_cancel_flags, "job-1"))
    assert modal_cancel_flags == {"job-1": True}
    # The site stopped reading; the container's executor sees the flag at its next poll and stops there.
    deadline = time.monotonic() + 20
    def stopped() -> bool:
        return bool(received) and "error" in received[-1] and "job-1" not in modal_cancel_flags

    while not stopped() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received[-1]["error"]["kind"] == "canceled"
    assert STEPS["modal-cancel"] < 400  # it did not run to the end
    assert "job-1" not in modal_cancel_flags  # the flag is cleared when the run ends


def test_the_container_loads_the_builtins_without_their_entry_point_and_installs_the_upscaler(
    monkeypatch, container_store
):
    import importlib.metadata

    from gpu_workers.backends import modal_app

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [ep for ep in real(**kw) if ep.dist is None or ep.dist.name != "kizy"])
    registry = modal_app._container_registry(["kizy", "kizy-testpack"])
    assert registry.entry("text_to_image").pack == "kizy" and registry.entry("make_image").pack == "kizy-testpack"
    assert "make_image" not in modal_app._container_registry(["kizy"])
    modal_app._install_upscaler(str(container_store))
    assert (container_store / "local" / "realesrgan-x4plus.safetensors").is_file()


def test_bucket_keys_stay_out_of_the_payload_when_the_container_has_a_storage_secret(monkeypatch):
    from gpu_workers.backends.modal_backend import remote_payload

    storage = {"kind": "s3", "bucket": "b", "endpoint_url": "https://r2.example", "access_key": "AK",
               "secret_key": "SK", "region": "auto"}
    job = JobPayload(job_id="j", workspace_id="w", graph=GRAPH, storage=storage)
    monkeypatch.delenv("KIZY_MODAL_STORAGE_SECRET", raising=False)
    assert remote_payload(job)["storage"]["secret_key"] == "SK"
    monkeypatch.setenv("KIZY_MODAL_STORAGE_SECRET", "kizy-r2")
    sent = remote_payload(job)
    assert "access_key" not in sent["storage"] and "secret_key" not in sent["storage"]
    assert sent["storage"]["bucket"] == "b" and sent["graph"] == GRAPH


def test_a_cancel_is_sent_even_while_the_remote_side_is_silent():
    import threading

    released = threading.Event()

    def cold_start():  # a container loading weights: nothing to stream for a long while
        released.wait(10)
        yield {"result": {"outputs": {}, "nodes": {}}}

    asked_at = time.monotonic() + 0.2
    sent: list[float] = []
    with pytest.raises(JobCanceled):
        replay(cold_start(), None, lambda: time.monotonic() > asked_at,
               on_cancel=lambda: sent.append(time.monotonic()), tick_s=0.05)
    released.set()
    assert len(sent) == 1 and sent[0] - asked_at < 1.0  # told within a tick, not after the 10 s wait


def test_an_error_raised_by_the_stream_itself_reaches_the_caller():
    def broken():
        yield {"event": "log", "node_id": "n", "message": "hi"}
        raise ConnectionError("the Modal call was interrupted")

    with pytest.raises(ConnectionError, match="interrupted"):
        replay(broken(), None, lambda: False)
