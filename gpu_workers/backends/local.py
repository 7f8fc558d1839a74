"""Run jobs in this process: the embedded default and what a Celery worker on a GPU machine uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gpu_workers.artifacts import ArtifactStore, artifact_store_from_config
from gpu_workers.backends.base import ComputeBackend, JobPayload
from gpu_workers.executor import GraphResult, run_graph
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import EventSink, ModelProvider


class LocalBackend(ComputeBackend):
    """Runs the executor in-process.

    ``store_factory`` turns the payload's storage config into a store; the Django side passes its
    adapter over django-storages here. ``models`` is the worker's long-lived model store, shared
    by every job so pipelines stay warm between jobs.
    """

    def __init__(
        self,
        registry: NodeRegistry,
        *,
        models: ModelProvider | None = None,
        store_factory: Callable[[Mapping[str, Any]], ArtifactStore] = artifact_store_from_config,
        device: str = "cpu",
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.registry = registry
        self.models = models
        self.store_factory = store_factory
        self.device = device
        self.retry_backoff_s = retry_backoff_s

    def submit(
        self,
        payload: JobPayload,
        *,
        events: EventSink | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> GraphResult:
        artifacts = self.store_factory(payload.storage)
        return run_graph(
            payload.graph,
            self.registry,
            workspace_id=payload.workspace_id,
            job_id=payload.job_id,
            artifacts=artifacts,
            models=bind_models(self.models, artifacts, payload.workspace_id),
            events=events,
            is_cancelled=is_cancelled,
            reuse_outputs=payload.reuse_outputs,
            device=self.device,
            retry_backoff_s=self.retry_backoff_s,
        )


def bind_models(models: ModelProvider | None, artifacts: ArtifactStore, workspace_id: str) -> ModelProvider | None:
    """A worker-wide cache with ``bind`` gives each job a view limited to its workspace's artifacts."""
    bind = getattr(models, "bind", None)
    return bind(artifacts=artifacts, workspace_id=workspace_id) if callable(bind) else models
