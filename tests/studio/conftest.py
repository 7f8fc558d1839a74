"""Studio fixtures: the tiny SD 1.5 demo model (generated once per session) registered in the catalog."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_sd15_files() -> None:
    from gpu_workers.models.realesrgan_ncnn import write_packaged
    from models_catalog.demo import ensure_tiny_models, store_root

    ensure_tiny_models(("sd15",))
    if not (store_root() / "local" / "realesrgan-x4plus.safetensors").exists():
        write_packaged(store_root() / "local", ("REALESRGAN_X4PLUS_UP4X",))


@pytest.fixture
def demo_catalog(db, tiny_sd15_files):
    from models_catalog.demo import load_demo_catalog

    return load_demo_catalog(generate=False, families=("sd15",))


def png_data_uri(width: int = 64, height: int = 64, color=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
