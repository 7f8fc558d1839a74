"""The compute backend interface and the job payload that crosses to it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gpu_workers.executor import GraphResult
from gpu_workers.sdk import EventSink


class JobPayload(BaseModel):
    """Everything a worker needs to run one job, and nothing it could not receive as JSON.

    It carries ids, the graph and how to reach storage, never bytes or database rows, so the same
    payload runs in a Celery worker or is sent to a Modal container unchanged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    workspace_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    graph: dict[str, Any] = Field(description="The workflow graph, already validated by the caller.")
    storage: dict[str, Any] = Field(
        description='Artifact store config, e.g. {"kind": "filesystem", "root": ...}.'
    )
    reuse_outputs: bool = Field(default=True, description="Reuse checkpoints from earlier jobs.")


class ComputeBackend(ABC):
    """Runs a job somewhere; implementations: ``local.LocalBackend`` (in-process)."""

    @abstractmethod
    def submit(
        self,
        payload: JobPayload,
        *,
        events: EventSink | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> GraphResult:
        """Run the job to completion and return its result.

        Raises ``GraphValidationError``, ``NodeError`` or ``JobCanceled`` like ``run_graph``.
        """
