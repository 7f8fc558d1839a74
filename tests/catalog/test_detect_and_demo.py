"""LoRA format/family detection and "will it load" on the engine's tiny models; the offline demo catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from gpu_workers.models.store import ModelStore
from models_catalog.compat import detect_lora
from models_catalog.demo import load_demo_catalog
from models_catalog.models import BaseModel, Intent, LoraAdapter, Source, Status
from models_catalog.selectors import lora_compatibility
from models_catalog.suggest.engine import suggest

from .conftest import lora_bytes

TINY = Path("local") / "tiny"


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("sd15-lora.safetensors", ("diffusers", "sd15")),
        ("sd15-lora-kohya.safetensors", ("kohya", "sd15")),
        ("sdxl-lora.safetensors", ("diffusers", "sdxl")),
    ],
)
def test_detects_format_and_family_of_loras_built_for_the_tiny_models(
    tiny_store: Path, file: str, expected: tuple[str, str]
) -> None:
    assert detect_lora(tiny_store / TINY / file) == expected


def test_a_base_model_is_not_mistaken_for_a_lora(tiny_store: Path) -> None:
    assert detect_lora(tiny_store / TINY / "sd15" / "unet" / "diffusion_pytorch_model.safetensors") == (
        "",
        "",
    )


def _model(family: str) -> BaseModel:
    return BaseModel.objects.create(
        name=f"tiny {family}",
        family=family,
        source=Source.LOCAL,
        external_id=f"tiny/{family}",
        status=Status.INSTALLED,
        store_ref=f"local:tiny/{family}",
        approved=True,
    )


def _lora(name: str, family: str, store_ref: str) -> LoraAdapter:
    return LoraAdapter.objects.create(
        name=name,
        family=family,
        source=Source.LOCAL,
        external_id=name,
        status=Status.INSTALLED,
        store_ref=store_ref,
        approved=True,
    )


@pytest.mark.django_db
def test_will_it_load_checks_families_then_layer_shapes(tiny_store: Path, settings: Any) -> None:
    settings.KIZY_MODEL_STORE = tiny_store
    sd15, sdxl = _model("sd15"), _model("sdxl")
    diffusers_lora = _lora("sd15 diffusers", "sd15", "local:tiny/sd15-lora")
    kohya_lora = _lora("sd15 kohya", "sd15", "local:tiny/sd15-lora-kohya")
    xl_lora = _lora("sdxl lora", "sdxl", "local:tiny/sdxl-lora")

    for lora in (diffusers_lora, kohya_lora):
        result = lora_compatibility(lora=lora, model=sd15)
        assert result.ok and result.checked_shapes, result.reason
    assert lora_compatibility(lora=xl_lora, model=sdxl).ok

    refused = lora_compatibility(lora=xl_lora, model=sd15)
    assert not refused.ok
    assert refused.reason == (
        "sdxl lora is an SDXL LoRA and tiny sd15 is an SD 1.5 model; LoRAs only work on the "
        "family they were trained for. Pick an SD 1.5 LoRA, or an SDXL model."
    )


@pytest.mark.django_db
def test_a_lora_labelled_for_the_right_family_but_the_wrong_size_is_refused(
    tiny_store: Path, settings: Any
) -> None:
    settings.KIZY_MODEL_STORE = tiny_store
    sd15 = _model("sd15")
    full_size = tiny_store / "local" / "real-size-sd15-lora.safetensors"
    full_size.write_bytes(lora_bytes(width=320))  # shaped for a real SD 1.5 UNet, not the tiny one
    lora = _lora("real size", "sd15", "local:real-size-sd15-lora")
    result = lora_compatibility(lora=lora, model=sd15)
    assert not result.ok and result.checked_shapes
    assert "trained for a different model size" in result.reason and "320" in result.reason


@pytest.mark.django_db
def test_demo_catalog_registers_tiny_models_and_a_lora_per_intent(tiny_store: Path, settings: Any) -> None:
    settings.KIZY_MODEL_STORE = tiny_store
    result = load_demo_catalog(generate=False, families=("sd15", "sdxl"))
    assert {m.family for m in result.models} == {"sd15", "sdxl"}
    assert len(result.loras) == Intent.objects.count() == 12
    store = ModelStore(tiny_store, allow_downloads=False)
    for entry in [*result.models, *result.loras]:
        assert entry.is_demo and entry.approved and entry.status == Status.INSTALLED
        assert "random weights" in entry.description
        store.resolve(entry.store_ref)
    for intent in Intent.objects.all():
        assert intent.loras.filter(is_demo=True).exists(), intent.slug
    line_art = LoraAdapter.objects.get(external_id="demo-loras/line-art")
    assert (line_art.lora_format, line_art.family) == ("kohya", "sd15")
    sd15 = BaseModel.objects.get(external_id="tiny/sd15")
    assert lora_compatibility(lora=line_art, model=sd15).checked_shapes

    before = {e.pk: e.sha256 for e in LoraAdapter.objects.all()}
    call_command("load_demo_catalog", "--no-generate", "--family", "sd15", "--family", "sdxl")
    assert {e.pk: e.sha256 for e in LoraAdapter.objects.all()} == before, "idempotent"
    assert BaseModel.objects.count() == 2


@pytest.mark.django_db
def test_auto_works_on_the_demo_catalog(tiny_store: Path, settings: Any) -> None:
    settings.KIZY_MODEL_STORE = tiny_store
    load_demo_catalog(generate=False, families=("sd15", "sdxl"))
    result = suggest(workspace=None, prompt="pixel art knight sprite, 16-bit", use_embeddings=False)
    assert result["intents"][0]["slug"] == "pixel-art"
    assert result["model"]["name"].startswith("Demo SDXL")
    assert [lora["name"] for lora in result["loras"]] == ["Demo Pixel art LoRA (random weights)"]
    assert "random weights" in result["loras"][0]["reason"]
    assert result["settings"]["width"] == 64, "the tiny model's own size wins"
