"""The executor as a user of a job would notice it: outputs, events, reuse, resume, cancel, retry."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kizy_testpack.counters import ATTEMPTS, RUNS, STEPS
from kizy_testpack.nodes import ConstInt
from PIL import Image

from gpu_workers.artifacts import FilesystemArtifactStore, InvalidArtifactKey, MemoryArtifactStore
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import (
    ExecutionContext,
    GraphValidationError,
    ImageRef,
    JobCanceled,
    ModelSpec,
    NodeError,
    RecordingEventSink,
)
from tests.gpu_workers.helpers import run


def edge(node: str, output: str) -> dict[str, str]:
    return {"node": node, "output": output}


def chain_graph(first: int = 1, second: int = 2) -> dict[str, Any]:
    return {
        "nodes": {
            "one": {"type": "const_int", "inputs": {"value": first}},
            "two": {"type": "const_int", "inputs": {"value": second}},
            "sum": {"type": "add", "inputs": {"a": edge("one", "value"), "b": edge("two", "value")}},
            "half": {"type": "scale", "inputs": {"x": edge("sum", "sum"), "factor": 0.5}},
        },
        "outputs": ["half", "sum"],
    }


IMAGE_GRAPH: dict[str, Any] = {
    "nodes": {
        "red": {"type": "make_image", "inputs": {"width": 24, "height": 10, "color": "#ff0000"}},
        "cyan": {"type": "invert_image", "inputs": {"image": edge("red", "image")}},
    },
    "outputs": ["cyan"],
}


def test_runs_nodes_after_their_inputs_and_returns_outputs(
    registry: NodeRegistry, store: MemoryArtifactStore, sink: RecordingEventSink
) -> None:
    graph = chain_graph()
    graph["nodes"]["unused"] = {"type": "const_int", "inputs": {"value": 9}}
    result = run(graph, registry, store, events=sink)

    assert result.outputs == {"half": {"y": 1.5}, "sum": {"sum": 3}}
    started = [event[1] for event in sink.of_kind("node_started")]
    assert started == ["one", "two", "sum", "half"]
    assert sink.of_kind("node_started")[2] == ("node_started", "sum", "add", "Add")
    assert {n: s["status"] for n, s in result.nodes.items()} == {
        "one": "succeeded",
        "two": "succeeded",
        "sum": "succeeded",
        "half": "succeeded",
        "unused": "skipped",
    }
    assert RUNS["const_int"] == 2
    assert all(result.nodes[n]["attempts"] == 1 and result.nodes[n]["seconds"] >= 0 for n in started)


def test_images_flow_by_reference_as_metadata_free_pngs(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    result = run(IMAGE_GRAPH, registry, store)

    ref = result.outputs["cyan"]["image"]
    assert ref["key"] == f"ws/ws1/artifacts/{ref['sha256']}.png"
    assert (ref["width"], ref["height"]) == (24, 10)
    image = Image.open(io.BytesIO(store.get(ref["key"])))
    assert image.format == "PNG" and image.size == (24, 10)
    assert image.getpixel((5, 5)) == (0, 255, 255)
    assert image.info == {} and not image.getexif()


def test_second_job_reuses_checkpoints(
    registry: NodeRegistry, store: MemoryArtifactStore, sink: RecordingEventSink
) -> None:
    first = run(chain_graph(), registry, store, job_id="job-1")
    second = run(chain_graph(), registry, store, job_id="job-2", events=sink)

    assert RUNS == {"const_int": 2, "add": 1, "scale": 1}
    assert second.outputs == first.outputs
    assert {s["status"] for s in second.nodes.values()} == {"cached"}
    assert sink.of_kind("node_started") == []
    assert [(e[1], e[2]) for e in sink.of_kind("node_finished")] == [
        ("one", True),
        ("two", True),
        ("sum", True),
        ("half", True),
    ]


def test_reuse_disabled_runs_everything_again(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    run(chain_graph(), registry, store, job_id="job-1")
    run(chain_graph(), registry, store, job_id="job-2", reuse_outputs=False)
    assert RUNS == {"const_int": 4, "add": 2, "scale": 2}


def test_only_nodes_whose_input_content_changed_run_again(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    run(chain_graph(1, 2), registry, store, job_id="job-1")
    result = run(chain_graph(0, 3), registry, store, job_id="job-2")

    # Both constants changed, so they and `sum` ran; `sum` is 3 again, so `half` was reused.
    assert {n: s["status"] for n, s in result.nodes.items()} == {
        "one": "succeeded",
        "two": "succeeded",
        "sum": "succeeded",
        "half": "cached",
    }
    assert RUNS == {"const_int": 4, "add": 2, "scale": 1}


def test_a_new_node_version_is_not_served_old_outputs(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    class ConstIntV2(ConstInt):
        version: ClassVar[str] = "1.1.0"

    graph = {"nodes": {"n": {"type": "const_int", "inputs": {"value": 5}}}, "outputs": ["n"]}
    run(graph, registry, store, job_id="job-1")
    run(graph, NodeRegistry.from_classes([ConstIntV2]), store, job_id="job-2")
    assert RUNS["const_int"] == 2


def test_checkpoints_are_scoped_to_the_workspace(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    run(IMAGE_GRAPH, registry, store, workspace_id="ws1", job_id="job-1")
    result = run(IMAGE_GRAPH, registry, store, workspace_id="ws2", job_id="job-1")
    assert RUNS == {"make_image": 2, "invert_image": 2}
    assert result.outputs["cyan"]["image"]["key"].startswith("ws/ws2/artifacts/")


def test_a_node_cannot_read_another_workspaces_artifact(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    foreign = ImageRef.model_validate(
        run(IMAGE_GRAPH, registry, store, workspace_id="ws1").outputs["cyan"]["image"]
    )
    graph = {
        "nodes": {"steal": {"type": "invert_image", "inputs": {"image": foreign.model_dump()}}},
        "outputs": ["steal"],
    }

    with pytest.raises(GraphValidationError, match="outside this workspace"):
        run(graph, registry, store, workspace_id="ws2")
    ctx = ExecutionContext(node_id="steal", workspace_id="ws2", artifacts=store)
    with pytest.raises(InvalidArtifactKey, match="does not belong to this workspace"):
        ctx.load_image(foreign)
    assert ExecutionContext(node_id="n", workspace_id="ws1", artifacts=store).load_image(foreign).size == (
        24,
        10,
    )


def test_outputs_whose_artifacts_are_gone_are_recomputed(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    run(IMAGE_GRAPH, registry, store, job_id="job-1")
    records_only = MemoryArtifactStore()
    for key in store.list_keys():
        if "/artifacts/" not in key:
            records_only.put(key, store.get(key), "application/json")

    result = run(IMAGE_GRAPH, registry, records_only, job_id="job-2")
    assert result.nodes["red"]["status"] == "succeeded"
    assert records_only.exists(result.outputs["cyan"]["image"]["key"])


def test_uncacheable_nodes_run_in_every_job(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    graph = {"nodes": {"now": {"type": "clock", "inputs": {}}}, "outputs": ["now"]}
    run(graph, registry, store, job_id="job-1")
    run(graph, registry, store, job_id="job-2")
    assert RUNS["clock"] == 2


class WorkerDied(BaseException):
    """Stands in for the process being killed: not an Exception, so nothing may swallow it."""


class DieWhenStarting(RecordingEventSink):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def node_started(self, node_id: str, type: str, title: str) -> None:
        super().node_started(node_id, type, title)
        if node_id == self.node_id:
            raise WorkerDied()


def test_rerunning_a_crashed_job_runs_only_unfinished_nodes(
    registry: NodeRegistry, store: MemoryArtifactStore, sink: RecordingEventSink
) -> None:
    with pytest.raises(WorkerDied):
        run(
            chain_graph(),
            registry,
            store,
            job_id="job-7",
            reuse_outputs=False,
            events=DieWhenStarting("half"),
        )
    assert RUNS == {"const_int": 2, "add": 1}

    result = run(chain_graph(), registry, store, job_id="job-7", reuse_outputs=False, events=sink)

    assert RUNS == {"const_int": 2, "add": 1, "scale": 1}
    assert [e[1] for e in sink.of_kind("node_started")] == ["half"]
    assert {n: (s["status"], s["resumed"]) for n, s in result.nodes.items()} == {
        "one": ("cached", True),
        "two": ("cached", True),
        "sum": ("cached", True),
        "half": ("succeeded", False),
    }
    assert result.outputs["half"] == {"y": 1.5}


def test_a_different_job_without_reuse_does_not_resume(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    with pytest.raises(WorkerDied):
        run(
            chain_graph(),
            registry,
            store,
            job_id="job-7",
            reuse_outputs=False,
            events=DieWhenStarting("half"),
        )
    run(chain_graph(), registry, store, job_id="job-8", reuse_outputs=False)
    assert RUNS == {"const_int": 4, "add": 2, "scale": 1}


def test_a_restarted_worker_resumes_from_files(registry: NodeRegistry, tmp_path: Path) -> None:
    with pytest.raises(WorkerDied):
        run(IMAGE_GRAPH, registry, FilesystemArtifactStore(tmp_path), events=DieWhenStarting("cyan"))
    result = run(IMAGE_GRAPH, registry, FilesystemArtifactStore(tmp_path), reuse_outputs=False)
    assert RUNS == {"make_image": 1, "invert_image": 1}
    assert result.nodes["red"]["status"] == "cached"
    assert (tmp_path / result.outputs["cyan"]["image"]["key"]).is_file()


class CancelAtStep(RecordingEventSink):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.cancel_at = step
        self.cancelled = False

    def step(self, node_id: str, i: int, n: int, preview_png: bytes | None) -> None:
        super().step(node_id, i, n, preview_png)
        if i == self.cancel_at:
            self.cancelled = True


def test_cancel_stops_the_running_node_within_one_step(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    graph = {
        "nodes": {
            "slow": {"type": "slow_steps", "inputs": {"steps": 100}},
            "after": {"type": "add", "inputs": {"a": edge("slow", "completed")}},
        },
        "outputs": ["after"],
    }
    sink = CancelAtStep(3)

    with pytest.raises(JobCanceled) as canceled:
        run(graph, registry, store, events=sink, is_cancelled=lambda: sink.cancelled)

    assert STEPS["slow"] == 3
    assert RUNS["add"] == 0
    assert canceled.value.states["slow"]["status"] == "canceled"
    assert canceled.value.states["after"]["status"] == "pending"


def test_a_canceled_job_starts_no_node(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    with pytest.raises(JobCanceled):
        run(chain_graph(), registry, store, is_cancelled=lambda: True)
    assert sum(RUNS.values()) == 0


def test_progress_reports_steps_and_small_previews(
    registry: NodeRegistry, store: MemoryArtifactStore, sink: RecordingEventSink
) -> None:
    graph = {
        "nodes": {"slow": {"type": "slow_steps", "inputs": {"steps": 2, "preview": True}}},
        "outputs": ["slow"],
    }
    run(graph, registry, store, events=sink)

    steps = sink.of_kind("step")
    assert [(e[1], e[2], e[3]) for e in steps] == [("slow", 1, 2), ("slow", 2, 2)]
    preview = Image.open(io.BytesIO(steps[0][4]))
    assert max(preview.size) <= 256
    assert ("log", "slow", "finished 2 steps") in sink.events


@pytest.mark.parametrize("error", ["transient", "connection"])
def test_transient_failures_are_retried_with_backoff(
    registry: NodeRegistry, store: MemoryArtifactStore, error: str
) -> None:
    slept: list[float] = []
    graph = {
        "nodes": {"f": {"type": "flaky", "inputs": {"key": "k", "failures": 2, "error": error, "value": 7}}},
        "outputs": ["f"],
    }

    result = run(graph, registry, store, retry_backoff_s=0.5, sleep=slept.append)

    assert result.outputs == {"f": {"value": 7}}
    assert result.nodes["f"]["attempts"] == 3 and ATTEMPTS["k"] == 3
    assert slept == [0.5, 1.0]


def test_retries_stop_at_max_retries(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    graph = {"nodes": {"f": {"type": "flaky", "inputs": {"key": "k", "failures": 10}}}, "outputs": ["f"]}
    with pytest.raises(NodeError) as failure:
        run(graph, registry, store)
    assert ATTEMPTS["k"] == 4  # one attempt plus the node's max_retries = 3
    assert failure.value.message == 'Node "f" (flaky) failed after 4 attempts: temporary failure (attempt 4)'


def test_a_failure_names_the_node_and_leaves_downstream_pending(
    registry: NodeRegistry, store: MemoryArtifactStore
) -> None:
    graph = {
        "nodes": {
            "ok": {"type": "const_int", "inputs": {"value": 1}},
            "broken": {
                "type": "fail_always",
                "inputs": {"message": "weights are corrupt", "value": edge("ok", "value")},
            },
            "after": {"type": "add", "inputs": {"a": edge("broken", "value")}},
        },
        "outputs": ["after"],
    }
    with pytest.raises(NodeError) as failure:
        run(graph, registry, store)

    error = failure.value
    assert (error.node_id, error.node_type) == ("broken", "fail_always")
    assert str(error) == 'Node "broken" (fail_always) failed: weights are corrupt'
    assert RUNS["fail_always"] == 1  # a ValueError is not retried
    assert {n: s["status"] for n, s in error.states.items()} == {
        "ok": "succeeded",
        "broken": "failed",
        "after": "pending",
    }
    assert error.states["broken"]["error"] == str(error)


def test_an_invalid_graph_runs_nothing(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    graph = chain_graph()
    graph["nodes"]["half"]["inputs"]["factor"] = 99
    with pytest.raises(GraphValidationError) as invalid:
        run(graph, registry, store)
    assert [(e["code"], e["node"], e["port"]) for e in invalid.value.errors] == [
        ("out_of_bounds", "half", "factor")
    ]
    assert sum(RUNS.values()) == 0


class DescribingModels:
    def pipeline(self, spec: ModelSpec, task: str) -> Any:
        raise AssertionError("not used")

    def resolve(self, ref: str) -> Path:
        raise AssertionError("not used")

    def describe(self, spec: ModelSpec) -> dict[str, Any]:
        return {"sha256": "ab" * 32, "loras": [lora.ref for lora in spec.loras]}


def test_reproducibility_record(registry: NodeRegistry, store: MemoryArtifactStore) -> None:
    graph = {
        "nodes": {
            "img": {"type": "noise_image", "inputs": {"seed": 1234}},
            "m": {
                "type": "model_echo",
                "inputs": {
                    "model": {
                        "ref": "tiny-sd15",
                        "family": "sd15",
                        "loras": [{"ref": "style", "weight": 0.8}],
                    }
                },
            },
        },
        "outputs": ["img", "m"],
    }
    record = run(graph, registry, store, models=DescribingModels()).reproducibility

    assert record["nodes"]["img"] == {
        "type": "noise_image",
        "version": "1.0.0",
        "pack": "kizy-testpack",
        "pack_version": "0.3.0",
    }
    assert record["seeds"] == {"img.seed": 1234}
    assert record["models"]["m.model"]["details"] == {"sha256": "ab" * 32, "loras": ["style"]}
    assert record["models"]["m.model"]["spec"]["ref"] == "tiny-sd15"
    assert {"python", "pydantic", "torch"} <= set(record["libraries"])
