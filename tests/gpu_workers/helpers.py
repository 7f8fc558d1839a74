"""Shorthand for running a graph the way the tests need it (no retry delays, fixed ids)."""

from __future__ import annotations

from typing import Any

from gpu_workers.artifacts import ArtifactStore
from gpu_workers.executor import GraphResult, run_graph
from gpu_workers.registry import NodeRegistry


def run(
    graph: dict[str, Any],
    registry: NodeRegistry,
    store: ArtifactStore,
    *,
    job_id: str = "job-1",
    workspace_id: str = "ws1",
    **kwargs: Any,
) -> GraphResult:
    kwargs.setdefault("retry_backoff_s", 0.0)
    return run_graph(graph, registry, workspace_id=workspace_id, job_id=job_id, artifacts=store, **kwargs)
