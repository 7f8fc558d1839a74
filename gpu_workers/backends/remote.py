"""Running a job where events must cross a process boundary (Modal): the job runs in a generator
that yields its events as JSON-able dicts and ends with the result or the error."""

from __future__ import annotations

import base64
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from gpu_workers.artifacts import artifact_store_from_config
from gpu_workers.backends.base import JobPayload
from gpu_workers.backends.local import bind_models
from gpu_workers.executor import GraphResult, run_graph
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import EventSink, GraphValidationError, JobCanceled, ModelProvider, NodeError

_DONE = object()


class RemoteJobError(RuntimeError):
    """The remote container failed outside any node (storage, model store, a bug); carries its message."""


class QueueEventSink:
    """Turns executor callbacks into JSON-able event dicts on a queue."""

    def __init__(self, events: queue.Queue[Any]) -> None:
        self.events = events

    def node_started(self, node_id: str, type: str, title: str) -> None:
        self.events.put({"event": "node_started", "node_id": node_id, "type": type, "title": title})

    def node_finished(self, node_id: str, cached: bool, seconds: float) -> None:
        self.events.put({"event": "node_finished", "node_id": node_id, "cached": cached, "seconds": seconds})

    def step(self, node_id: str, i: int, n: int, preview_png: bytes | None) -> None:
        preview = base64.b64encode(preview_png).decode() if preview_png else None
        self.events.put({"event": "step", "node_id": node_id, "i": i, "n": n, "preview": preview})

    def log(self, node_id: str, message: str) -> None:
        self.events.put({"event": "log", "node_id": node_id, "message": message})


def stream_in_thread(
    work: Callable[[queue.Queue[Any]], dict[str, Any]], *, thread_name: str
) -> Iterator[dict[str, Any]]:
    """Run ``work(events)`` in a thread; yield each event it puts on ``events`` as it comes, then the
    outcome it returns (``{"result": ...}`` or ``{"error": ...}``). Generations and trainings share it."""
    events: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome.update(work(events))
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=run, name=thread_name, daemon=True)
    thread.start()
    while (item := events.get()) is not _DONE:
        yield item
    thread.join()
    yield outcome


def stream_job(
    payload: dict[str, Any], registry: NodeRegistry, models: ModelProvider | None, device: str,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """Run the job in a thread and yield its events, then `{"result": ...}` or `{"error": ...}`."""
    job = JobPayload.model_validate(payload)

    def work(events: queue.Queue[Any]) -> dict[str, Any]:
        try:
            artifacts = artifact_store_from_config(job.storage)
            result = run_graph(job.graph, registry, workspace_id=job.workspace_id, job_id=job.job_id,
                               artifacts=artifacts, models=bind_models(models, artifacts, job.workspace_id),
                               events=QueueEventSink(events), is_cancelled=is_cancelled,
                               reuse_outputs=job.reuse_outputs, device=device)
            return {"result": result.as_dict()}
        except JobCanceled:
            return {"error": {"kind": "canceled", "message": "the job was canceled"}}
        except GraphValidationError as exc:
            return {"error": {"kind": "invalid", "message": str(exc), "errors": exc.errors}}
        except NodeError as exc:
            return {"error": {"kind": "node", "message": str(exc), "node_id": exc.node_id,
                              "node_type": exc.node_type}}
        except Exception as exc:  # noqa: BLE001 - storage, model store, a bug: its words must reach the site
            return {"error": {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}}

    return stream_in_thread(work, thread_name=f"kizy-job-{job.job_id}")


_TICK: Any = object()
_END: Any = object()


def _with_ticks(stream: Iterator[dict[str, Any]], tick_s: float) -> Iterator[Any]:
    """The stream's items, with ``_TICK`` whenever ``tick_s`` passes without one; errors re-raised."""
    items: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for item in stream:
                items.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, raised there
            items.put(_Raised(exc))
        finally:
            items.put(_END)

    threading.Thread(target=read, name="kizy-remote-stream", daemon=True).start()
    while True:
        try:
            item = items.get(timeout=tick_s)
        except queue.Empty:
            yield _TICK
            continue
        if item is _END:
            return
        if isinstance(item, _Raised):
            raise item.exc
        yield item


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def replay(
    stream: Iterator[dict[str, Any]], sink: EventSink | None, is_cancelled: Callable[[], bool],
    on_cancel: Callable[[], None] | None = None, tick_s: float = 0.5,
) -> GraphResult:
    """Feed streamed events to a local sink and rebuild the result (or raise what the job raised).

    When ``is_cancelled`` turns true, ``on_cancel`` tells the remote side (which then stops at its next
    step) before the job is reported canceled here. The stream is read in a thread, so a cancel is
    noticed within ``tick_s`` even while the remote side sends nothing (a cold start loading weights)."""
    for item in _with_ticks(stream, tick_s):
        if is_cancelled():
            if on_cancel is not None:
                on_cancel()
            raise JobCanceled()
        if item is _TICK:
            continue
        kind = item.get("event")
        if kind is None:
            if "result" in item:
                data = item["result"]
                return GraphResult(outputs=data["outputs"], nodes=data["nodes"],
                                   reproducibility=data.get("reproducibility", {}))
            error = item.get("error", {})
            if error.get("kind") == "canceled":
                raise JobCanceled()
            if error.get("kind") == "invalid":
                raise GraphValidationError(error.get("errors", []))
            if error.get("kind") == "node":
                raise NodeError(error.get("node_id"), error.get("message", "the remote job failed"),
                                node_type=error.get("node_type"))
            raise RemoteJobError(f"The remote worker failed: {error.get('message') or 'no message was given'}")
        if sink is None:
            continue
        if kind == "node_started":
            sink.node_started(item["node_id"], item["type"], item["title"])
        elif kind == "node_finished":
            sink.node_finished(item["node_id"], item["cached"], item["seconds"])
        elif kind == "step":
            preview = base64.b64decode(item["preview"]) if item.get("preview") else None
            sink.step(item["node_id"], item["i"], item["n"], preview)
        elif kind == "log":
            sink.log(item["node_id"], item["message"])
    raise NodeError(None, "the remote job ended without a result")
