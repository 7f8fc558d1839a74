"""Fixtures for fine-tuning tests: the tiny SD 1.5 model (generated once per session), a catalog row
for it, small training settings, and what a subprocess worker needs to share the test database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import LazySettings

from models_catalog.models import BaseModel

# Small enough that a training run takes seconds on a CPU, big enough to exercise every path.
FAST_PARAMS = {
    "steps": 20,
    "resolution": 64,
    "checkpoint_every": 10,
    "sample_steps": 2,
    "batch_size": 2,
    "rank": 4,
    "alpha": 4,
}


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """The tiny models gain nothing from intra-op threads, and on a busy 2-core machine the threads'
    spin-waiting makes every step ~10x slower; one thread keeps these tests fast and steady."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store whose `local/sd15` is the tiny random-weight SD 1.5 pipeline (~2 s to build)."""
    from gpu_workers.models.tiny import build_sd15

    root = tmp_path_factory.mktemp("training-model-store")
    with one_torch_thread():
        build_sd15(root / "local")
    return root


@pytest.fixture(autouse=True)
def single_threaded_torch() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(autouse=True)
def training_settings(settings: LazySettings, tiny_model_store: Path) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.KIZY_MODEL_STORE = tiny_model_store
    settings.KIZY_DEVICE = "cpu"


@pytest.fixture
def sd15_model(db: None) -> BaseModel:
    return BaseModel.objects.create(
        name="Tiny SD 1.5",
        source="local",
        external_id="sd15",
        family="sd15",
        approved=True,
        is_demo=True,
        status="installed",
        store_ref="local:sd15",
    )


@pytest.fixture
def media_root(settings: LazySettings) -> Path:
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def clean_media(media_root: Path) -> Path:
    """An empty storage folder, so a test can assert that nothing at all was written."""
    shutil.rmtree(media_root / "ws", ignore_errors=True)
    return media_root


