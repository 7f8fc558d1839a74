"""The warm pipeline cache: LoRA switching without reloads, exact restore, eviction, provenance."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from PIL import Image

from gpu_workers.executor import run_graph
from gpu_workers.models.cache import PipelineCache
from gpu_workers.models.errors import ModelNotInstalledError
from gpu_workers.models.store import ModelStore
from gpu_workers.nodes.builtin import NODES
from gpu_workers.nodes.builtin.generate import ImageToImage, TextToImage
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import ModelSpec
from tests.gpu_workers.diffusion_support import WORKSPACE, Harness, shared_cache, spec, store_root

GEN = {"width": 64, "height": 64, "steps": 3, "seed": 11, "prompt": "a cat", "scheduler": "euler"}


def generate(harness: Harness, model: ModelSpec) -> str:
    sha: str = harness.run(TextToImage, model=model, **GEN).image.sha256
    return sha


@pytest.mark.parametrize("family", ["sd15", "sdxl", "flux"])
def test_a_lora_changes_the_output_and_a_spec_without_it_restores_the_base_exactly(family: str) -> None:
    harness = Harness()
    lora = f"local:{family}-lora"
    base = generate(harness, spec(family))
    with_lora = generate(harness, spec(family, (lora, 1.0)))
    half = generate(harness, spec(family, (lora, 0.5)))
    assert len({base, with_lora, half}) == 3
    assert generate(harness, spec(family)) == base  # adapters disabled: bit-identical to the base
    assert generate(harness, spec(family, (lora, 1.0))) == with_lora  # and back on, same as before


def test_loras_apply_to_the_derived_image_to_image_pipeline_too() -> None:
    harness = Harness()
    source = harness.put_image(Image.new("RGB", (64, 64), "teal"))
    common = {"image": source, "strength": 0.8, "steps": 3, "seed": 5, "scheduler": "euler"}
    plain = harness.run(ImageToImage, model=spec("sd15"), **common).image.sha256
    styled = harness.run(ImageToImage, model=spec("sd15", ("local:sd15-lora", 1.0)), **common).image.sha256
    assert plain != styled
    assert harness.run(ImageToImage, model=spec("sd15"), **common).image.sha256 == plain


def test_kohya_and_diffusers_files_of_the_same_lora_give_the_same_image() -> None:
    harness = Harness()
    diffusers_format = generate(harness, spec("sd15", ("local:sd15-lora", 1.0)))
    kohya_format = generate(harness, spec("sd15", ("local:sd15-lora-kohya", 1.0)))
    assert diffusers_format == kohya_format


def test_a_workspace_lora_is_served_only_to_jobs_of_that_workspace_even_when_warm() -> None:
    owner = Harness()
    data = (store_root() / "local" / "sd15-lora.safetensors").read_bytes()
    key, _sha = owner.context().save_bytes(data, "safetensors", "application/octet-stream")
    trained = spec("sd15", (f"artifact:{key}", 1.0))
    from_artifact = generate(owner, trained)
    assert from_artifact == generate(owner, spec("sd15", ("local:sd15-lora", 1.0)))

    outsider = Harness(owner.cache)
    outsider.artifacts = owner.artifacts  # same storage, but the job runs for workspace "ws2"
    ctx = outsider.context()
    ctx.workspace_id = "ws2"
    ctx.models = owner.cache.bind(artifacts=owner.artifacts, workspace_id="ws2")
    with pytest.raises(ModelNotInstalledError, match="not found in this workspace"):
        TextToImage().run(ctx, TextToImage.Inputs.model_validate({"model": trained, **GEN}))


def test_the_second_job_on_the_same_model_and_loras_loads_nothing() -> None:
    cache = shared_cache()
    model = spec("sd15", ("local:sd15-lora", 0.8))
    generate(Harness(cache), model)
    loads = cache.stats.total_loads, cache.stats.derived_pipelines
    second = Harness(cache)
    generate(second, model)
    generate(second, spec("sd15"))  # switching LoRAs off is not a load either
    assert (cache.stats.total_loads, cache.stats.derived_pipelines) == loads


def test_task_pipelines_share_the_base_weights() -> None:
    cache = PipelineCache(ModelStore(store_root()), budget_bytes=1 << 30)
    model = spec("sd15")
    txt2img = cache.pipeline(model, "txt2img")
    before = cache.memory_bytes()
    img2img = cache.pipeline(model, "img2img")
    assert img2img is not txt2img and img2img.unet is txt2img.unet
    assert cache.memory_bytes() == before and cache.stats.base_loads == 1


def test_the_least_recently_used_model_is_evicted_when_over_budget() -> None:
    probe = PipelineCache(ModelStore(store_root()), budget_bytes=1 << 40)
    probe.pipeline(spec("sd15"), "txt2img")
    sd15_bytes = probe.memory_bytes()

    cache = PipelineCache(ModelStore(store_root()), budget_bytes=sd15_bytes + 1024)
    cache.pipeline(spec("sd15"), "txt2img")
    cache.pipeline(spec("flux"), "txt2img")
    assert cache.warm_refs() == ["local:flux"] and cache.stats.evictions == 1
    cache.pipeline(spec("sd15"), "txt2img")
    assert cache.stats.base_loads == 3  # sd15 had to come back from disk
    assert cache.warm_refs() == ["local:sd15"] and cache.stats.evictions == 2  # and pushed flux out
    assert cache.memory_bytes() == sd15_bytes <= cache.budget_bytes


def test_describe_records_the_file_hashes_for_reproducibility() -> None:
    local = store_root() / "local"
    described = shared_cache().describe(spec("sd15", ("local:sd15-lora", 0.7)))
    lora_sha = hashlib.sha256((local / "sd15-lora.safetensors").read_bytes()).hexdigest()
    assert described["loras"] == [{"ref": "local:sd15-lora", "weight": 0.7, "sha256": lora_sha}]
    assert len(described["sha256"]) == 64 and described["family"] == "sd15"
    assert shared_cache().describe(spec("sd15"))["sha256"] == described["sha256"]


def test_a_full_graph_runs_through_the_executor_with_model_provenance() -> None:
    harness = Harness()
    registry = NodeRegistry.from_classes(NODES, pack="kizy")
    graph: dict[str, Any] = {
        "nodes": {
            "model": {"type": "load_model", "inputs": {"ref": "local:sd15"}},
            "style": {
                "type": "apply_lora",
                "inputs": {"model": {"node": "model", "output": "model"}, "lora": {"ref": "local:sd15-lora"}},
            },
            "draw": {
                "type": "text_to_image",
                "inputs": {"model": {"node": "style", "output": "model"}, **GEN},
            },
            "big": {
                "type": "upscale",
                "inputs": {
                    "image": {"node": "draw", "output": "image"},
                    "scale": 2,
                    "upscaler": "local:realesr-animevideov3-x4",
                },
            },
            "keep": {"type": "save_image", "inputs": {"image": {"node": "big", "output": "image"}}},
        },
        "outputs": ["keep"],
    }
    result = run_graph(
        graph,
        registry,
        workspace_id=WORKSPACE,
        job_id="job-1",
        artifacts=harness.artifacts,
        models=harness.cache.bind(artifacts=harness.artifacts, workspace_id=WORKSPACE),
        events=harness.events,
    )
    image = result.outputs["keep"]["image"]
    assert (image["width"], image["height"]) == (128, 128)
    provenance = result.reproducibility["models"]["draw.model"]["details"]
    assert provenance["loras"][0]["ref"] == "local:sd15-lora" and len(provenance["sha256"]) == 64
    assert result.reproducibility["seeds"]["draw.seed"] == GEN["seed"]
