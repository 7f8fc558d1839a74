"""Which compute backend runs jobs (KIZY_COMPUTE_BACKEND): `local` (this worker) or `modal`."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings

from gpu_workers.backends.base import ComputeBackend, JobPayload
from gpu_workers.executor import GraphResult
from gpu_workers.sdk import EventSink

from .engine import StorageArtifactStore, node_registry


def _django_store(config: Mapping[str, Any]) -> StorageArtifactStore:
    return StorageArtifactStore()


@lru_cache(maxsize=1)
def worker_models() -> Any:
    """The worker's warm pipeline cache over the model store, shared by every job it runs."""
    from gpu_workers.models.cache import PipelineCache
    from gpu_workers.models.store import ModelStore

    return PipelineCache(ModelStore(settings.KIZY_MODEL_STORE), budget_bytes=settings.KIZY_PIPELINE_CACHE_BYTES,
                         device=_device())


def storage_config() -> dict[str, Any]:
    """How a remote backend reaches the same files: S3/R2 credentials, or this site's storage."""
    if settings.KIZY_S3_BUCKET:
        options = settings.STORAGES["default"]["OPTIONS"]
        return {"kind": "s3", "bucket": options["bucket_name"], "endpoint_url": options["endpoint_url"],
                "access_key": options["access_key"], "secret_key": options["secret_key"],
                "region": options["region_name"]}
    return {"kind": "django"}


@dataclass
class Backend:
    backend: ComputeBackend

    def run(self, *, graph: dict[str, Any], workspace_id: str, job_id: str, events: EventSink,
            is_cancelled: Callable[[], bool], reuse_outputs: bool) -> GraphResult:
        payload = JobPayload(job_id=job_id, workspace_id=workspace_id, graph=graph, storage=storage_config(),
                             reuse_outputs=reuse_outputs)
        return self.backend.submit(payload, events=events, is_cancelled=is_cancelled)


@lru_cache(maxsize=1)
def compute_backend() -> Backend:
    kind = settings.KIZY_COMPUTE_BACKEND
    if kind == "modal":
        from gpu_workers.backends.modal_backend import ModalBackend

        return Backend(ModalBackend())
    if kind != "local":
        raise ValueError(f"KIZY_COMPUTE_BACKEND must be 'local' or 'modal', not {kind!r}.")
    from gpu_workers.backends.local import LocalBackend

    return Backend(LocalBackend(node_registry(), models=worker_models(), store_factory=_django_store,
                                device=_device()))


@lru_cache(maxsize=1)
def _device() -> str:
    if settings.KIZY_DEVICE != "auto":
        return str(settings.KIZY_DEVICE)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
