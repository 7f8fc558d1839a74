"""The Django-free trainer on the tiny SD 1.5 model: exact resume, cancel, files that load."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.models.detect import detect_file
from gpu_workers.sdk import JobCanceled
from gpu_workers.training.images import buckets_for, hash_distance, nearest_bucket, perceptual_hash
from gpu_workers.training.lora_files import header_metadata
from gpu_workers.training.presets import ParamError, resolve_params
from gpu_workers.training.spec import RecordingTrainingEvents, TrainingItem, TrainingSpec
from gpu_workers.training.trainer import train_lora

from .conftest import one_torch_thread
from .helpers import png, smooth_png


def _spec(store: MemoryArtifactStore, **overrides) -> TrainingSpec:
    items = []
    for index, (w, h) in enumerate([(64, 64), (96, 64), (64, 64), (96, 64)]):
        key = f"ws/w1/datasets/d1/{index}.png"
        store.put(key, png(w, h, seed=index), "image/png")
        items.append(TrainingItem(key=key, caption=f"a photo of zkw, picture {index}", width=w, height=h))
    params = resolve_params(
        "sd15",
        {
            "steps": 6,
            "resolution": 64,
            "checkpoint_every": 3,
            "sample_steps": 2,
            "batch_size": 2,
            "rank": 4,
            "alpha": 2,
            "lr_scheduler": "cosine",
            "lr_warmup_steps": 1,
        },
    )
    fields = {
        "job_id": "job1",
        "workspace_id": "w1",
        "family": "sd15",
        "params": params,
        "items": items,
        "sample_prompts": ("a photo of zkw",),
        "trigger_word": "zkw",
        **overrides,
    }
    return TrainingSpec(**fields)


@pytest.fixture(scope="module")
def trained(tiny_model_store: Path):
    store = MemoryArtifactStore()
    spec = _spec(store)
    events = RecordingTrainingEvents()
    with one_torch_thread():
        result = train_lora(
            spec, model_path=tiny_model_store / "local" / "sd15", artifacts=store, events=events
        )
    return store, spec, events, result


def test_a_resumed_run_trains_exactly_what_an_uninterrupted_one_does(trained, tiny_model_store):
    store, spec, events, result = trained
    assert [s[0] for s in events.steps] == [1, 2, 3, 4, 5, 6]
    assert [c.step for c in events.checkpoints] == [3, 6]
    assert store.exists(spec.checkpoint_prefix(3) + "state.json")
    resumed_events = RecordingTrainingEvents()
    resumed = train_lora(
        spec.model_copy(update={"resume_from_step": 3, "run": 2}),
        model_path=tiny_model_store / "local" / "sd15",
        artifacts=store,
        events=resumed_events,
    )
    assert [s[0] for s in resumed_events.steps] == [4, 5, 6]  # steps 1-3 are not redone
    assert resumed_events.starts == [3]
    assert [s[1] for s in resumed_events.steps] == [s[1] for s in events.steps[3:]]
    first, again = load(store.get(result.lora_key)), load(store.get(resumed.lora_key))
    assert first.keys() == again.keys()
    assert max((first[k] - again[k]).abs().max().item() for k in first) < 1e-6  # the same weights
    assert header_metadata(store.get(result.lora_key)) == header_metadata(store.get(resumed.lora_key))
    assert [entry[:2] for entry in resumed.loss_history] == [entry[:2] for entry in result.loss_history]
    assert [entry[2] for entry in resumed.loss_history] == [1, 1, 1, 2, 2, 2]


def test_samples_are_drawn_with_fixed_seeds(trained):
    store, _, events, _ = trained
    first, last = events.checkpoints
    assert [s.seed for s in first.samples] == [42] and first.samples[0].prompt == "a photo of zkw"
    image = Image.open(io.BytesIO(store.get(last.samples[0].key)))
    assert image.size == (64, 64)


def test_lora_files_load_in_diffusers_and_change_the_output(trained, tiny_model_store, tmp_path):
    from diffusers import StableDiffusionPipeline

    store, _, _, result = trained
    for name, key in (("diffusers.safetensors", result.lora_key), ("kohya.safetensors", result.kohya_key)):
        (tmp_path / name).write_bytes(store.get(key))
    header, fmt, family = detect_file(tmp_path / "diffusers.safetensors")
    assert (fmt, family) == ("diffusers", "sd15") and header.metadata["modelspec.trigger_phrase"] == "zkw"
    _, kohya_fmt, kohya_family = detect_file(tmp_path / "kohya.safetensors")
    assert (kohya_fmt, kohya_family) == ("kohya", "sd15")

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_store / "local" / "sd15")
    pipe.set_progress_bar_config(disable=True)

    def draw() -> np.ndarray:
        return pipe(
            "a photo of zkw",
            num_inference_steps=2,
            height=64,
            width=64,
            output_type="np",
            generator=torch.Generator().manual_seed(7),
        ).images[0]

    base = draw()
    pipe.load_lora_weights(tmp_path, weight_name="diffusers.safetensors", adapter_name="trained")
    with_lora = draw()
    pipe.unload_lora_weights()
    pipe.load_lora_weights(tmp_path, weight_name="kohya.safetensors", adapter_name="kohya")
    with_kohya = draw()
    assert np.abs(with_lora - base).max() > 1e-3
    assert np.abs(with_kohya - with_lora).max() < 1e-5  # alpha/rank scaling preserved in both formats


def test_cancel_stops_before_the_next_step(tiny_model_store):
    store = MemoryArtifactStore()
    events = RecordingTrainingEvents()
    with pytest.raises(JobCanceled):
        train_lora(
            _spec(store),
            model_path=tiny_model_store / "local" / "sd15",
            artifacts=store,
            events=events,
            is_cancelled=lambda: len(events.steps) >= 2,
        )
    assert [s[0] for s in events.steps] == [1, 2]
    assert not any(key.endswith(".safetensors") and "/artifacts/" in key for key in store.list_keys())


def test_presets_bounds():
    assert resolve_params("sdxl")["resolution"] == 1024
    with pytest.raises(ParamError) as refused:
        resolve_params("sd15", {"batch_size": 0, "resolution": 100, "buckets": "maybe"})
    assert set(refused.value.errors) == {"batch_size", "buckets"}
    with pytest.raises(ParamError, match="multiple of 64"):
        resolve_params("sd15", {"resolution": 100})
    with pytest.raises(ParamError, match="supports"):
        resolve_params("video")
    assert resolve_params("sd15", {"steps": 40})["checkpoint_every"] == 40


def test_buckets_and_perceptual_hash():
    assert nearest_bucket(800, 520, 512) == (640, 384)
    assert nearest_bucket(520, 800, 512) == (384, 640)
    assert nearest_bucket(800, 520, 512, use_buckets=False) == (512, 512)
    assert all(w % 64 == 0 and h % 64 == 0 and max(w, h) / min(w, h) <= 2 for w, h in buckets_for(1024))
    a = Image.open(io.BytesIO(smooth_png(300, 300, seed=1)))
    b = a.resize((250, 250))
    c = Image.open(io.BytesIO(smooth_png(300, 300, seed=2)))
    assert hash_distance(perceptual_hash(a), perceptual_hash(b)) <= 6
    assert hash_distance(perceptual_hash(a), perceptual_hash(c)) > 10


@pytest.fixture(scope="session")
def other_families(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SDXL and Flux pipelines (a few seconds each)."""
    from gpu_workers.models.tiny import build_flux, build_sdxl

    root = tmp_path_factory.mktemp("training-other-families")
    with one_torch_thread():
        build_sdxl(root)
        build_flux(root)
    return root


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_sdxl_and_flux_train_resume_and_load(family, other_families, tmp_path):
    """SDXL (size/crop ids, pooled text) and Flux (flow matching on packed latents) go through the
    same loop: resume is exact, and both files load in diffusers with the same effect."""
    store = MemoryArtifactStore()
    params = resolve_params(family, {"steps": 2, "resolution": 64, "checkpoint_every": 1, "rank": 4,
                                     "alpha": 4, "learning_rate": 1e-3, "batch_size": 2})
    spec = _spec(store).model_copy(update={"family": family, "params": params, "sample_prompts": ()})
    model = other_families / family
    first = train_lora(spec, model_path=model, artifacts=store)
    again = train_lora(spec.model_copy(update={"resume_from_step": 1, "run": 2}), model_path=model, artifacts=store)
    assert [e[:2] for e in again.loss_history] == [e[:2] for e in first.loss_history]
    weights, resumed = load(store.get(first.lora_key)), load(store.get(again.lora_key))
    assert max((weights[k] - resumed[k]).abs().max().item() for k in weights) < 1e-6

    from gpu_workers.training.lora_files import pipeline_class

    (tmp_path / "d.safetensors").write_bytes(store.get(first.lora_key))
    (tmp_path / "k.safetensors").write_bytes(store.get(first.kohya_key))
    assert detect_file(tmp_path / "d.safetensors")[1:] == ("diffusers", family)
    assert detect_file(tmp_path / "k.safetensors")[1:] == ("kohya", family)
    pipe = pipeline_class(family).from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)

    def draw() -> np.ndarray:
        return pipe("a photo of zkw", num_inference_steps=2, height=64, width=64, output_type="np",
                    generator=torch.Generator().manual_seed(7)).images[0]

    base = draw()
    pipe.load_lora_weights(tmp_path, weight_name="d.safetensors", adapter_name="d")
    with_lora = draw()
    pipe.unload_lora_weights()
    pipe.load_lora_weights(tmp_path, weight_name="k.safetensors", adapter_name="k")
    assert np.abs(with_lora - base).max() > 0
    assert np.abs(draw() - with_lora).max() < 1e-5
