"""Catalog test fixtures: a loopback upstream, recorded CivitAI payloads, tiny models, small LoRA files."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from .upstream import FakeUpstream

FIXTURES = Path(__file__).parent / "fixtures" / "civitai"
CHECKPOINT_LIST = "models_list_types-Checkpoint_sort-HighestRated_limit10_primaryFileOnly_2024-05.json"


def civitai_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def store(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "model-store"
    settings.KIZY_MODEL_STORE = root
    return root


@pytest.fixture
def civitai(settings: Any, upstream: FakeUpstream, store: Path) -> FakeUpstream:
    settings.CIVITAI_API_BASE = f"{upstream.url}/api/v1"
    settings.CIVITAI_TOKEN = "test-civitai-token"  # noqa: S105 - a fake token for the fake server
    settings.KIZY_CATALOG_HTTP_ATTEMPTS = 3
    settings.KIZY_CATALOG_NSFW_MAX = 16
    return upstream


@pytest.fixture
def huggingface(settings: Any, upstream: FakeUpstream, store: Path) -> FakeUpstream:
    settings.HF_ENDPOINT = upstream.url
    settings.HF_TOKEN = ""
    settings.KIZY_CATALOG_HTTP_ATTEMPTS = 3
    settings.KIZY_CATALOG_NSFW_MAX = 16
    return upstream


def lora_bytes(*, family: str = "sd15", kohya: bool = False, width: int = 32, seed: int = 0) -> bytes:
    """A small but well-formed LoRA file (safetensors) with real key names for `family`."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    modules = {
        "sd15": [
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
        ],
        "sdxl": [
            "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q",
            "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k",
        ],
        "flux": ["transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_k"],
    }[family]
    prefix = "transformer." if family == "flux" else "unet."
    for module in modules:
        down = rng.standard_normal((4, width)).astype(np.float32)
        up = rng.standard_normal((width, 4)).astype(np.float32)
        if kohya:
            name = "lora_unet_" + module.replace(".", "_")
            tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"] = down, up
            tensors[f"{name}.alpha"] = np.array(4.0, dtype=np.float32)
        else:
            tensors[f"{prefix}{module}.lora_A.weight"], tensors[f"{prefix}{module}.lora_B.weight"] = down, up
    return save(tensors, metadata={"format": "pt"})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def civitai_lora_model(
    *,
    model_id: int,
    version_id: int,
    data: bytes,
    base_model: str = "SD 1.5",
    api_url: str,
    name: str = "Test LoRA",
    nsfw_level: int = 1,
    file_name: str = "test-lora.safetensors",
) -> dict[str, Any]:
    """A `/models/<id>` payload shaped like the recorded Flux LoRA, around our own small file."""
    model = copy.deepcopy(civitai_fixture("model_1231067_lora_flux1d.json"))
    model.update(id=model_id, name=name, nsfwLevel=nsfw_level)
    version = model["modelVersions"][0]
    version.update(id=version_id, baseModel=base_model, nsfwLevel=nsfw_level, trainedWords=["tstyle"])
    file = version["files"][0]
    file.update(
        name=file_name, sizeKB=len(data) / 1024, downloadUrl=f"{api_url}/download/models/{version_id}"
    )
    file["hashes"]["SHA256"] = sha256(data).upper()
    version["downloadUrl"] = file["downloadUrl"]
    return model


def hf_sibling(name: str, data: bytes, *, lfs: bool = True) -> dict[str, Any]:
    git_id = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()  # noqa: S324 - git's own id
    sibling: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": git_id}
    if lfs:
        sibling["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
    return sibling


def hf_model_info(
    repo: str,
    *,
    tags: list[str],
    siblings: list[dict[str, Any]],
    card: dict[str, Any] | None = None,
    sha: str = "0123456789abcdef0123456789abcdef01234567",
    downloads: int = 10,
) -> dict[str, Any]:
    """A `/api/models/<repo>?blobs=true` answer in the Hub's own shape."""
    return {
        "_id": hashlib.md5(repo.encode()).hexdigest()[:24],  # noqa: S324 - an opaque id, like the Hub's
        "id": repo,
        "modelId": repo,
        "author": repo.split("/")[0],
        "sha": sha,
        "lastModified": "2025-01-02T03:04:05.000Z",
        "createdAt": "2024-12-01T00:00:00.000Z",
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": downloads,
        "likes": 3,
        "library_name": "diffusers",
        "tags": tags,
        "pipeline_tag": "text-to-image",
        "cardData": card or {},
        "siblings": siblings,
        "spaces": [],
        "usedStorage": sum(s.get("size", 0) for s in siblings),
    }


def buffer(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's tiny SD 1.5 and SDXL models and LoRAs, generated once per test session (~40 s)."""
    from gpu_workers.models.tiny import generate

    root = tmp_path_factory.mktemp("tiny-store")
    generate(root / "local" / "tiny", ("sd15", "sdxl"))
    return root
