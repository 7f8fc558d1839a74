"""The Modal app: serverless GPUs running the same executor as the local worker.

Deploy with `modal deploy gpu_workers/backends/modal_app.py` (see docs/modal.md). The container
keeps a warm pipeline cache between calls (loaded in `@modal.enter`), reads and writes artifacts in
the same S3/R2 bucket as the site, and streams events back to the Celery task that called it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import modal

APP_NAME = os.environ.get("KIZY_MODAL_APP", "kizy-gpu")
GPU = os.environ.get("KIZY_MODAL_GPU", "H100")
MODEL_VOLUME = os.environ.get("KIZY_MODAL_VOLUME", "kizy-models")
MODELS_PATH = "/models"

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("ffmpeg", "libgl1")
    .pip_install(
        "torch==2.13.0", "diffusers==0.42.1", "transformers==5.24.0", "peft==0.21.2", "safetensors",
        "accelerate", "pillow", "pydantic>=2", "boto3", "huggingface_hub", "imageio", "imageio-ffmpeg",
        "opencv-python-headless<5", "einops", "numpy",
    )
    .pip_install("spandrel==0.4.2", extra_options="--no-deps")
    .env({"HF_HOME": f"{MODELS_PATH}/hf"})
    .add_local_python_source("gpu_workers")
)
app = modal.App(APP_NAME, image=image)
models_volume = modal.Volume.from_name(MODEL_VOLUME, create_if_missing=True)


@app.cls(gpu=GPU, volumes={MODELS_PATH: models_volume}, timeout=3600, scaledown_window=300)
class GpuWorker:
    """One warm GPU container; `run` streams a job's events and ends with its result."""

    @modal.enter()
    def load(self) -> None:
        from gpu_workers.models.cache import PipelineCache
        from gpu_workers.models.store import ModelStore
        from gpu_workers.registry import NodeRegistry

        allow = os.environ.get("KIZY_NODE_PACKS", "kizy").split(",")
        self.registry = NodeRegistry.from_entry_points(allow) if _has_entry_points() else _builtin_registry()
        self.device = "cuda" if _cuda() else "cpu"
        budget = int(os.environ.get("KIZY_PIPELINE_CACHE_BYTES", str(60 * 2**30)))
        self.models = PipelineCache(ModelStore(os.environ.get("KIZY_MODEL_STORE", MODELS_PATH)),
                                    budget_bytes=budget, device=self.device)

    @modal.method()
    def run(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from gpu_workers.backends.remote import stream_job

        yield from stream_job(payload, self.registry, self.models, self.device)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _has_entry_points() -> bool:
    import importlib.metadata

    return any(True for _ in importlib.metadata.entry_points(group="kizy.nodes"))


def _builtin_registry() -> Any:
    """In the container the project is added as source (no entry points): load the built-in pack."""
    from gpu_workers.nodes.builtin import NODES
    from gpu_workers.registry import NodeRegistry

    return NodeRegistry.from_classes(NODES, pack="kizy", pack_version="builtin")
