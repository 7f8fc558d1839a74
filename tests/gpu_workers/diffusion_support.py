"""Shared setup for the diffusion tests: tiny models, converted upscaler weights, a warm cache.

The tiny models are generated once per test session (about 15 s on two cores) into a temporary
model store, or reused from ``KIZY_TINY_MODELS_DIR`` when that points at an earlier run's store.
Fixtures here are plain functions cached at module level rather than conftest fixtures, so every
``test_diffusion_*`` module shares one store and one warm cache (imported fixtures would otherwise
be rebuilt per module).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.models.cache import PipelineCache
from gpu_workers.models.store import ModelStore
from gpu_workers.sdk import ExecutionContext, ImageRef, ModelSpec, Node, RecordingEventSink

WORKSPACE = "ws1"
FAMILIES = ("sd15", "sdxl", "flux")
UPSCALER = "local:realesr-animevideov3-x4"


@functools.cache
def store_root() -> Path:
    """A model store whose ``local/`` holds every tiny model and the converted Real-ESRGAN weights."""
    from gpu_workers.models import tiny
    from gpu_workers.models.realesrgan_ncnn import write_packaged

    reuse = os.environ.get("KIZY_TINY_MODELS_DIR")
    root = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="kizy-tiny-models-"))
    local = root / "local"
    if not (local / "manifest.json").exists():
        tiny.generate(local)
    write_packaged(local, ("realesr-animevideov3-x4", "realesrgan-x4plus"))
    return root


@functools.cache
def shared_cache() -> PipelineCache:
    import torch

    # The tiny models run thousands of microsecond-sized ops; with two OpenMP threads on a busy
    # two-core machine every op waits at a barrier for a descheduled thread (measured: 4 s vs 0.4 s
    # per image). One thread is the fast setting for toy sizes.
    torch.set_num_threads(1)
    return PipelineCache(ModelStore(store_root(), allow_downloads=False), budget_bytes=2 << 30)


def spec(family: str, *loras: tuple[str, float]) -> ModelSpec:
    ref = "local:video" if family == "video" else f"local:{family}"
    return ModelSpec.model_validate(
        {"ref": ref, "family": family, "loras": [{"ref": r, "weight": w} for r, w in loras]}
    )


class Harness:
    """Runs single nodes the way the executor does, with one workspace's artifacts and events."""

    def __init__(self, cache: PipelineCache | None = None, *, cancel_after_steps: int | None = None) -> None:
        self.artifacts = MemoryArtifactStore()
        self.cache = cache or shared_cache()
        self.events = RecordingEventSink()
        self.cancel_after_steps = cancel_after_steps

    def _cancelled(self) -> bool:
        return (
            self.cancel_after_steps is not None
            and len(self.events.of_kind("step")) >= self.cancel_after_steps
        )

    def context(self, node_id: str = "node") -> ExecutionContext:
        return ExecutionContext(
            node_id=node_id,
            workspace_id=WORKSPACE,
            artifacts=self.artifacts,
            models=self.cache.bind(artifacts=self.artifacts, workspace_id=WORKSPACE),
            events=self.events,
            is_cancelled=self._cancelled,
        )

    def run(self, node_cls: type[Node], **inputs: Any) -> Any:
        return node_cls().run(self.context(node_cls.type), node_cls.Inputs.model_validate(inputs))

    def put_image(self, image: Image.Image) -> ImageRef:
        return self.context().save_image(image)

    def image(self, ref: ImageRef) -> Image.Image:
        return self.context().load_image(ref)
