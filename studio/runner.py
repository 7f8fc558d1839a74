"""Runs one generation job inside a worker: lease, resolve references, execute, record results.

The lease makes redelivery safe (J2): a second copy of the task finds the lease held and exits; a
killed worker's lease expires and the next attempt resumes from the per-node checkpoints (J1).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from gpu_workers.sdk import GraphValidationError, JobCanceled, NodeError

from . import events
from .backends import compute_backend
from .engine import Heartbeat, Throttle, is_cancel_requested, node_registry, preview_data_uri
from .models import Generation, Status
from .node_titles import graph_node_inputs, plain_title
from .references import catalog_resolver, resolve_graph
from .thumbnails import with_thumbnails

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
LOGS_WEBHOOK_INTERVAL = 1.0  # seconds between two `logs` webhooks of one job


def lease_seconds() -> int:
    """How long a worker's claim on a job lasts without renewal (renewed every third of it)."""
    return int(settings.KIZY_JOB_LEASE_SECONDS)
OUTPUT_TYPES = {"image": "image/png", "video": "video/mp4"}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lease(generation_id: str, owner: str) -> Generation | None:
    """Take the job if nobody holds a live lease on it; None when another worker has it or it ended."""
    now = timezone.now()
    taken = Generation.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner),
        pk=generation_id, status__in=[Status.STARTING, Status.PROCESSING],
    ).update(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds()), attempts=F("attempts") + 1)
    if not taken:
        return None
    return Generation.objects.select_related("workspace").get(pk=generation_id)


def renew_lease(generation_id: str, owner: str) -> None:
    Generation.objects.filter(pk=generation_id, lease_owner=owner).update(
        lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds())
    )


class GenerationEventSink:
    """gpu_workers EventSink → job row (throttled) + websocket events + throttled `logs` webhooks."""

    def __init__(self, generation: Generation, total_nodes: int) -> None:
        self.generation = generation
        self.total = max(total_nodes, 1)
        self.done = 0
        self.states: dict[str, dict[str, Any]] = dict(generation.node_states or {})
        self.row_throttle = Throttle(0.5)
        self.log_lines: list[str] = []
        self.logs_webhook_throttle = Throttle(LOGS_WEBHOOK_INTERVAL)
        self.logs_unsent = False

    def _save(self, force: bool = False, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.generation, name, value)
        if self.row_throttle.ready(force):
            Generation.objects.filter(pk=self.generation.pk).update(
                progress=self.generation.progress, current_node=self.generation.current_node,
                current_title=self.generation.current_title, node_states=self.states,
                logs="\n".join(self.log_lines)[-20000:],
            )

    def node_started(self, node_id: str, type: str, title: str) -> None:
        # The row, the API and every websocket get plain words ("Upscaling ×4"); the node class's own
        # title stays in the node's record and in the event as `node_title`.
        words = plain_title(type, title, graph_node_inputs(self.generation.graph, node_id))
        self.states[node_id] = {"type": type, "status": "running", "title": title,
                                "started_at": timezone.now().isoformat()}
        self._save(force=True, current_node=node_id, current_title=words)
        events.emit(self.generation, {"type": "node", "node": node_id, "node_type": type, "title": words,
                                      "node_title": title, "state": "started", "progress": self.generation.progress})

    def node_finished(self, node_id: str, cached: bool, seconds: float) -> None:
        self.done += 1
        state = self.states.setdefault(node_id, {})
        state.update({"status": "cached" if cached else "succeeded", "seconds": round(seconds, 4)})
        self._save(force=True, progress=min(self.done / self.total, 1.0))
        events.emit(self.generation, {"type": "node", "node": node_id, "state": "cached" if cached else "finished",
                                      "seconds": round(seconds, 4), "progress": self.generation.progress})

    def step(self, node_id: str, i: int, n: int, preview_png: bytes | None) -> None:
        progress = min((self.done + (i / max(n, 1))) / self.total, 1.0)
        self._save(progress=progress)
        events.emit(self.generation, {"type": "step", "node": node_id, "step": i, "total": n,
                                      "progress": round(progress, 4), "preview": preview_data_uri(preview_png)})

    def log(self, node_id: str, message: str) -> None:
        line = f"[{node_id}] {message}"
        self.log_lines.append(line)
        self._save()
        events.emit(self.generation, {"type": "log", "node": node_id, "message": message})
        self.logs_unsent = True
        if self.logs_webhook_throttle.ready():
            self.send_logs_webhook()

    def send_logs_webhook(self) -> None:
        """A `logs` webhook carrying every line so far: at most one per LOGS_WEBHOOK_INTERVAL while the
        job runs, plus one at the end (`flush_logs`) for lines the throttle held back."""
        from .webhooks import queue_generation_webhooks

        self.logs_unsent = False
        self.generation.logs = "\n".join(self.log_lines)[-20000:]
        queue_generation_webhooks(self.generation, "logs")

    def flush_logs(self) -> None:
        if self.logs_unsent:
            self.send_logs_webhook()


def _outputs_from(result_outputs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten the output nodes' ports into a list of files (images and videos) for clients."""
    files: list[dict[str, Any]] = []

    def visit(node_id: str, port: str, value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                visit(node_id, port, item)
        elif isinstance(value, dict) and "key" in value and "sha256" in value:
            kind = "video" if "frames" in value else "image"
            files.append({"node": node_id, "port": port, "kind": kind, "content_type": OUTPUT_TYPES[kind],
                          **{k: value[k] for k in ("key", "sha256", "width", "height", "frames", "fps") if k in value}})

    for node_id, ports in result_outputs.items():
        for port, value in ports.items():
            visit(node_id, port, value)
    return files


def _merged_states(sink: GenerationEventSink, exc: BaseException) -> dict[str, dict[str, Any]]:
    """What the sink saw, corrected by the executor's final word on each node (failed, canceled…)."""
    for node_id, state in (getattr(exc, "states", None) or {}).items():
        sink.states.setdefault(node_id, {}).update({k: v for k, v in state.items() if v is not None})
    return sink.states


def _finish(generation: Generation, **fields: Any) -> None:
    fields.setdefault("completed_at", timezone.now())
    fields.update(lease_owner="", lease_expires_at=None)
    with transaction.atomic():
        Generation.objects.filter(pk=generation.pk).update(**fields)
        generation.refresh_from_db()
        events.job_finished_on_commit(generation)


def generation_execute(*, generation_id: str) -> str:
    """Run the job if this worker can take it. Returns what happened, for logs and tests."""
    owner = worker_id()
    generation = acquire_lease(generation_id, owner)
    if generation is None:
        return "skipped: another worker holds the lease, or the job has ended"
    if generation.cancel_requested or is_cancel_requested(generation_id):
        _finish(generation, status=Status.CANCELED)
        return "canceled"
    if generation.attempts > MAX_ATTEMPTS:
        _finish(generation, status=Status.FAILED,
                error=f"Gave up after {MAX_ATTEMPTS} attempts; the worker kept stopping while running this job.")
        return "failed: too many attempts"

    first_start = generation.started_at is None
    Generation.objects.filter(pk=generation.pk).update(
        status=Status.PROCESSING, started_at=generation.started_at or timezone.now()
    )
    generation.refresh_from_db()
    events.emit(generation, events.job_state(generation))
    if first_start:
        from .webhooks import queue_generation_webhooks

        queue_generation_webhooks(generation, "start")

    registry = node_registry()
    try:
        graph = resolve_graph(generation.graph, registry, catalog_resolver(generation.workspace))
    except LookupError as exc:
        _finish(generation, status=Status.FAILED, error=f"A model or LoRA is no longer available: {exc}")
        return "failed: reference"
    sink = GenerationEventSink(generation, total_nodes=len(graph.get("nodes", {})))
    cancel_check = Throttle(0.05)
    canceled = False

    def is_cancelled() -> bool:
        nonlocal canceled
        if not canceled and cancel_check.ready():
            canceled = is_cancel_requested(generation_id)
        return canceled

    started = time.monotonic()
    try:
        try:
            with Heartbeat(lambda: renew_lease(generation_id, owner), every=lease_seconds() / 3):
                result = compute_backend().run(
                    graph=graph, workspace_id=str(generation.workspace_id), job_id=str(generation.pk),
                    events=sink, is_cancelled=is_cancelled, reuse_outputs=settings.KIZY_REUSE_NODE_OUTPUTS,
                )
        finally:
            sink.flush_logs()  # before the final status, so `logs` never arrives after `completed`
    except JobCanceled as exc:
        _finish(generation, status=Status.CANCELED, node_states=_merged_states(sink, exc))
        return "canceled"
    except (NodeError, GraphValidationError) as exc:
        _finish(generation, status=Status.FAILED, error=str(exc), node_states=_merged_states(sink, exc),
                logs="\n".join(sink.log_lines))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - the backend itself (no Modal token, storage, a lost container)
        # Fail at once with its words: left to the lease, the job would sit in `processing`, be retried
        # and end as "the worker kept stopping", which hides a configuration error.
        logger.exception("job %s: the compute backend failed", generation_id)
        _finish(generation, status=Status.FAILED, node_states=_merged_states(sink, exc),
                error=f"The compute backend ({settings.KIZY_COMPUTE_BACKEND}) could not run the job: {exc}",
                logs="\n".join(sink.log_lines))
        return "failed: backend"
    reproducibility = {**result.reproducibility, "seconds": round(time.monotonic() - started, 4)}
    for node_id, state in result.nodes.items():
        sink.states.setdefault(node_id, {}).update({k: v for k, v in state.items() if v is not None})
    _finish(
        generation, status=Status.SUCCEEDED, progress=1.0,
        outputs=with_thumbnails(_outputs_from(result.outputs), workspace_id=str(generation.workspace_id)),
        node_states=sink.states, reproducibility=reproducibility, current_node="", current_title="",
        logs="\n".join(sink.log_lines),
    )
    return "succeeded"


def requeue_stale_jobs(*, older_than: int | None = None) -> list[str]:
    """Jobs whose worker vanished (lease expired) or whose message was lost: queue them again."""
    from .services import enqueue

    now = timezone.now()
    older_than = lease_seconds() if older_than is None else older_than
    stale = Generation.objects.filter(
        Q(status=Status.PROCESSING, lease_expires_at__lt=now)
        | Q(status=Status.STARTING, lease_owner="", created_at__lt=now - timedelta(seconds=older_than))
        | Q(status=Status.STARTING, lease_expires_at__lt=now)
    )
    requeued = []
    for generation in stale:
        enqueue(generation)
        requeued.append(str(generation.pk))
    return requeued
