"""Hugging Face sync through `huggingface_hub` pointed at a loopback HF_ENDPOINT."""

from __future__ import annotations

from typing import Any

import pytest

from models_catalog.models import BaseModel, LoraAdapter, Status, SyncReport
from models_catalog.services.sync import catalog_sync

from .conftest import hf_model_info, hf_sibling, lora_bytes
from .upstream import FakeUpstream, Request, Response, json_response

pytestmark = pytest.mark.django_db

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
FLUX = "black-forest-labs/FLUX.1-dev"
PIXEL = "someone/pixel-lora"


def _repos() -> dict[str, dict[str, Any]]:
    weights = b"\0" * 64
    return {
        SD15: hf_model_info(
            SD15,
            tags=[
                "diffusers",
                "safetensors",
                "diffusers:StableDiffusionPipeline",
                "license:creativeml-openrail-m",
                "text-to-image",
            ],
            siblings=[
                hf_sibling("model_index.json", b"{}", lfs=False),
                hf_sibling("unet/config.json", b"{}", lfs=False),
                hf_sibling("unet/diffusion_pytorch_model.safetensors", weights),
                hf_sibling("unet/diffusion_pytorch_model.bin", weights),
                hf_sibling("v1-5-pruned.ckpt", weights),
            ],
            card={"license": "creativeml-openrail-m"},
            downloads=900,
        ),
        FLUX: hf_model_info(
            FLUX,
            tags=["diffusers", "diffusers:FluxPipeline", "text-to-image"],
            siblings=[
                hf_sibling("model_index.json", b"{}", lfs=False),
                hf_sibling("transformer/diffusion_pytorch_model.safetensors", weights),
            ],
            card={"license": "flux-1-dev-non-commercial-license"},
            downloads=800,
        ),
        PIXEL: hf_model_info(
            PIXEL,
            tags=[
                "diffusers",
                "lora",
                "template:sd-lora",
                "text-to-image",
                "base_model:adapter:stabilityai/stable-diffusion-xl-base-1.0",
            ],
            siblings=[
                hf_sibling("README.md", b"# pixel", lfs=False),
                hf_sibling("pytorch_lora_weights.safetensors", lora_bytes(family="sdxl")),
                hf_sibling("images/cat.png", b"png"),
            ],
            card={
                "instance_prompt": "pixel art, 16bit",
                "license": "openrail++",
                "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
                "widget": [{"text": "a pixel cat", "output": {"url": "images/cat.png"}}],
            },
        ),
    }


def serve_hub(hub: FakeUpstream, repos: dict[str, dict[str, Any]]) -> None:
    def listing(request: Request) -> Response:
        filters = request.query.get("filter", [])
        if "lora" in filters:
            ids = [r for r in repos if "lora" in repos[r]["tags"]]
        else:
            ids = [r for r in repos if "lora" not in repos[r]["tags"]]
        page = int((request.query.get("cursor") or ["0"])[0])
        chunk = ids[page : page + 1]
        items = [
            {
                "_id": repos[r]["_id"],
                "id": r,
                "likes": 1,
                "downloads": 1,
                "tags": repos[r]["tags"],
                "pipeline_tag": "text-to-image",
                "library_name": "diffusers",
            }
            for r in chunk
        ]
        headers = {}
        if page + 1 < len(ids):  # the Hub pages with a Link header, like GitHub
            query = "&".join(f"filter={f}" for f in filters)
            headers["Link"] = f'<{hub.url}/api/models?{query}&cursor={page + 1}>; rel="next"'
        return json_response(items, headers=headers)

    hub.add_handler("/api/models", listing)
    for repo, info in repos.items():
        hub.add(f"/api/models/{repo}", json_response(info))


def test_sync_reads_pipelines_and_loras_and_is_idempotent(huggingface: FakeUpstream) -> None:
    serve_hub(huggingface, _repos())
    report = catalog_sync(source="huggingface")
    assert report.outcome == SyncReport.Outcome.SUCCEEDED, report.errors
    assert (report.created, report.updated) == (3, 0)
    assert any("cursor" in r.query for r in huggingface.requests_to("/api/models")), "followed the Link header"
    info_requests = huggingface.requests_to(f"/api/models/{SD15}")
    assert info_requests and info_requests[0].query.get("blobs") == ["true"]

    sd15 = BaseModel.objects.get(external_id=SD15)
    assert (
        sd15.family == "sd15"
        and sd15.layout == "diffusers"
        and sd15.revision == "0123456789abcdef0123456789abcdef01234567"
    )
    assert sd15.license == "creativeml-openrail-m" and sd15.commercial_use_allowed
    names = sorted(sd15.files.values_list("name", flat=True))
    assert names == ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"], (
        "pickles and the root single-file checkpoint are not catalogued for install"
    )
    flux = BaseModel.objects.get(external_id=FLUX)
    assert flux.family == "flux" and flux.commercial_use_allowed is False

    lora = LoraAdapter.objects.get(external_id=PIXEL)
    assert lora.family == "sdxl" and lora.trigger_words == ["pixel art, 16bit"]
    assert lora.upstream_base_model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert lora.files.get().name == "pytorch_lora_weights.safetensors"
    assert lora.preview_images[0]["url"].endswith(
        f"/{PIXEL}/resolve/0123456789abcdef0123456789abcdef01234567/images/cat.png"
    )

    again = catalog_sync(source="huggingface")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_a_lora_on_a_known_fine_tune_inherits_its_family(huggingface: FakeUpstream) -> None:
    repos = _repos()
    finetune = "someone/dreamy-sd15"
    repos[finetune] = hf_model_info(
        finetune,
        tags=["diffusers", "diffusers:StableDiffusionPipeline"],
        siblings=[hf_sibling("model_index.json", b"{}", lfs=False)],
    )
    lora = "someone/dreamy-lora"
    repos[lora] = hf_model_info(
        lora,
        tags=["lora", f"base_model:adapter:{finetune}"],
        siblings=[hf_sibling("lora.safetensors", lora_bytes())],
    )
    serve_hub(huggingface, repos)
    catalog_sync(source="huggingface")
    entry = LoraAdapter.objects.get(external_id=lora)
    assert entry.family == "sd15" and not entry.family_flagged


def test_removed_and_disabled_repos_are_withdrawn(huggingface: FakeUpstream) -> None:
    repos = _repos()
    serve_hub(huggingface, repos)
    catalog_sync(source="huggingface")
    gone = dict(repos)
    del gone[FLUX]
    gone[PIXEL] = {**repos[PIXEL], "disabled": True}
    huggingface.routes.clear()
    serve_hub(huggingface, {k: v for k, v in gone.items() if k != PIXEL})
    huggingface.add(f"/api/models/{PIXEL}", json_response(gone[PIXEL]))
    report = catalog_sync(source="huggingface")
    assert report.withdrawn == 2
    assert BaseModel.objects.get(external_id=FLUX).status == Status.WITHDRAWN
    assert LoraAdapter.objects.get(external_id=PIXEL).status == Status.WITHDRAWN
    assert BaseModel.objects.get(external_id=SD15).status == Status.AVAILABLE


def test_hub_429_is_retried_after_the_retry_after_delay(huggingface: FakeUpstream) -> None:
    import time

    from models_catalog.clients.http import RetryPolicy, UpstreamError
    from models_catalog.clients.huggingface import HuggingFaceClient

    info = _repos()[PIXEL]
    path = f"/api/models/{PIXEL}"
    huggingface.add(path, json_response({"error": "rate limited"}, 429, {"Retry-After": "1"}), json_response(info))
    client = HuggingFaceClient(retry=RetryPolicy(attempts=3))
    started = time.monotonic()
    got = client.model_info(PIXEL)
    assert got.id == PIXEL and got.sha == info["sha"]
    assert client.waits == [1.0] and time.monotonic() - started >= 1.0, "waited as the Hub asked"
    assert len(huggingface.requests_to(path)) == 2

    # A hub that keeps refusing: the client gives up after its attempts and says why.
    huggingface.add(path, json_response({"error": "rate limited"}, 429, {"Retry-After": "0"}))
    stubborn = HuggingFaceClient(retry=RetryPolicy(attempts=2), sleep=lambda _s: None)
    with pytest.raises(UpstreamError, match="429"):
        stubborn.model_info(PIXEL)
    assert stubborn.waits == [0.0] and len(huggingface.requests_to(path)) == 4
