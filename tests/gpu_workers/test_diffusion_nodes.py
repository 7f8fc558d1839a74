"""Every diffusion node on every family it supports, as a user would see the results."""

from __future__ import annotations

import io
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

from gpu_workers.nodes.builtin.controlnet import ControlNetGenerate
from gpu_workers.nodes.builtin.face_detail import FaceDetail
from gpu_workers.nodes.builtin.generate import ImageToImage, TextToImage
from gpu_workers.nodes.builtin.images import LoadImage, SaveImage
from gpu_workers.nodes.builtin.models import ApplyLora, LoadModel
from gpu_workers.nodes.builtin.upscale import Upscale
from gpu_workers.nodes.builtin.video import ImageToVideo, SaveVideo, TextToVideo
from gpu_workers.sdk import JobCanceled, NodeError
from tests.gpu_workers.diffusion_support import FAMILIES, UPSCALER, Harness, spec

FAST = {"steps": 2, "seed": 7, "prompt": "a photo of a cat"}


def pixels(harness: Harness, ref: object) -> np.ndarray:
    return np.asarray(harness.image(ref), dtype=np.int16)  # type: ignore[arg-type]


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


# -- models --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [*FAMILIES, "video"])
def test_load_model_reads_the_family_from_the_models_config(harness: Harness, family: str) -> None:
    ref = "local:video" if family == "video" else f"local:{family}"
    assert harness.run(LoadModel, ref=ref).model.family == family


def test_load_model_explains_missing_models_and_loras(harness: Harness) -> None:
    with pytest.raises(NodeError, match="not installed"):
        harness.run(LoadModel, ref="local:nope")
    with pytest.raises(NodeError, match="LoRA, not a base model"):
        harness.run(LoadModel, ref="local:sd15-lora")


def test_apply_lora_stacks_and_refuses_a_lora_of_another_family(harness: Harness) -> None:
    model = harness.run(ApplyLora, model=spec("sd15"), lora={"ref": "local:sd15-lora", "weight": 0.5}).model
    model = harness.run(ApplyLora, model=model, lora={"ref": "local:sd15-lora-kohya"}).model
    assert [(lora.ref, lora.weight) for lora in model.loras] == [
        ("local:sd15-lora", 0.5),
        ("local:sd15-lora-kohya", 1.0),
    ]
    with pytest.raises(NodeError, match="trained for SDXL models"):
        harness.run(ApplyLora, model=spec("sd15"), lora={"ref": "local:sdxl-lora"})


# -- images --------------------------------------------------------------------------------------


def test_load_image_turns_an_upload_into_a_clean_png(harness: Harness) -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    Image.new("RGB", (40, 20), "red").save(buffer, "JPEG", exif=exif.tobytes())
    key, _ = harness.context().save_bytes(buffer.getvalue(), "jpg", "image/jpeg")
    image = harness.run(LoadImage, key=key).image
    assert (image.width, image.height) == (20, 40)  # EXIF orientation applied
    stored = harness.artifacts.get(image.key)
    assert stored.startswith(b"\x89PNG") and b"eXIf" not in stored and b"Exif" not in stored


def test_save_image_keeps_a_metadata_free_png(harness: Harness) -> None:
    source = Image.new("RGB", (16, 8), "blue")
    source.info["parameters"] = "prompt: secret"
    saved = harness.run(SaveImage, image=harness.put_image(source)).image
    stored = harness.artifacts.get(saved.key)
    assert (saved.width, saved.height) == (16, 8) and b"secret" not in stored and b"tEXt" not in stored


# -- generation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_text_to_image_makes_an_image_of_the_requested_size(harness: Harness, family: str) -> None:
    out = harness.run(TextToImage, model=spec(family), width=64, height=96, **FAST).image
    assert (out.width, out.height) == (64, 96)
    assert harness.image(out).size == (64, 96)


def test_text_to_image_is_reproducible_and_reports_steps_with_previews(harness: Harness) -> None:
    common = {"model": spec("sd15"), "width": 64, "height": 64, "steps": 4, "scheduler": "euler"}
    first = harness.run(TextToImage, seed=3, **common)
    steps = harness.events.of_kind("step")
    assert [(e[2], e[3]) for e in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(
        e[4] is not None and e[4].startswith(b"\x89PNG") for e in steps
    )  # every step previews at 4 steps
    again = harness.run(TextToImage, seed=3, **common)
    other = harness.run(TextToImage, seed=4, **common)
    assert first.image.sha256 == again.image.sha256 != other.image.sha256


def test_cancelling_stops_generation_between_steps() -> None:
    harness = Harness(cancel_after_steps=1)
    with pytest.raises(JobCanceled):
        harness.run(TextToImage, model=spec("sd15"), width=64, height=64, steps=4)
    assert len(harness.events.of_kind("step")) == 1


@pytest.mark.parametrize("scheduler", ["euler", "euler_a", "dpm++_2m", "dpm++_2m_karras", "ddim"])
def test_named_schedulers_run_and_change_the_result(harness: Harness, scheduler: str) -> None:
    base = harness.run(TextToImage, model=spec("sd15"), width=64, height=64, **FAST).image
    out = harness.run(TextToImage, model=spec("sd15"), width=64, height=64, scheduler=scheduler, **FAST).image
    assert out.sha256 != base.sha256


def test_flux_refuses_samplers_it_cannot_use(harness: Harness) -> None:
    with pytest.raises(Exception, match="flow-matching"):
        harness.run(TextToImage, model=spec("flux"), width=64, height=64, scheduler="dpm++_2m", **FAST)
    with pytest.raises(NodeError, match="divisible by 16"):
        harness.run(TextToImage, model=spec("flux"), width=72, height=64, **FAST)


@pytest.mark.parametrize("family", FAMILIES)
def test_image_to_image_keeps_the_input_size_or_the_requested_one(harness: Harness, family: str) -> None:
    source = harness.put_image(Image.new("RGB", (64, 80), "orange"))
    same = harness.run(ImageToImage, model=spec(family), image=source, strength=0.5, steps=4).image
    assert (same.width, same.height) == (64, 80)
    resized = harness.run(ImageToImage, model=spec(family), image=source, width=96, height=64, steps=4).image
    assert (resized.width, resized.height) == (96, 64)


def test_image_models_refuse_video_nodes_and_the_reverse_with_a_clear_message(harness: Harness) -> None:
    wrong = "needs an SD 1.5, SDXL or Flux model; local:video is an AnimateDiff video model. Use text_to_video"
    with pytest.raises(NodeError, match=wrong):
        harness.run(TextToImage, model=spec("video"), **FAST)
    with pytest.raises(NodeError, match="needs an AnimateDiff video model; local:sd15 is an SD 1.5 model"):
        harness.run(TextToVideo, model=spec("sd15"), **FAST)


@pytest.mark.parametrize("family", FAMILIES)
def test_controlnet_follows_the_guide_and_changes_the_output(
    harness: Harness, family: str, astronaut: Image.Image
) -> None:
    guide = harness.put_image(astronaut.resize((64, 64)))
    common = {
        "model": spec(family),
        "guide_image": guide,
        "controlnet": f"local:{family}-controlnet",
        "width": 64,
        "height": 64,
        **FAST,
    }
    guided = harness.run(ControlNetGenerate, **common)
    assert (guided.image.width, guided.image.height) == (64, 64)
    assert harness.image(guided.control).size == (64, 64)
    unguided = harness.run(ControlNetGenerate, **{**common, "strength": 0.0})
    assert guided.image.sha256 != unguided.image.sha256
    depth = harness.run(ControlNetGenerate, **{**common, "preprocessor": "depth"})
    assert depth.image.sha256 != guided.image.sha256


def test_controlnet_of_another_family_is_refused(harness: Harness) -> None:
    guide = harness.put_image(Image.new("RGB", (64, 64)))
    with pytest.raises(Exception, match="ControlNet local:sdxl-controlnet is for SDXL models, not SD 1.5"):
        harness.run(
            ControlNetGenerate,
            model=spec("sd15"),
            guide_image=guide,
            controlnet="local:sdxl-controlnet",
            width=64,
            height=64,
            **FAST,
        )


# -- upscaling -----------------------------------------------------------------------------------


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


def test_upscale_beats_bicubic_on_a_real_photo(harness: Harness, astronaut: Image.Image) -> None:
    # A real low-resolution photo is blurred before it is small (optics, motion); Real-ESRGAN is trained
    # to undo that, plain resizing cannot. On clean bicubic downscales GAN upscalers trade PSNR for
    # sharpness, so that is not the honest comparison.
    truth = astronaut.resize((256, 256), Image.Resampling.LANCZOS)
    small = truth.filter(ImageFilter.GaussianBlur(4)).resize((64, 64), Image.Resampling.BICUBIC)
    out = harness.run(Upscale, image=harness.put_image(small), scale=4, upscaler=UPSCALER, tile=48).image
    assert (out.width, out.height) == (256, 256)
    upscaled = harness.image(out)
    bicubic = small.resize((256, 256), Image.Resampling.BICUBIC)
    assert psnr(upscaled, truth) > psnr(bicubic, truth) + 0.5
    assert len(harness.events.of_kind("step")) == 4  # 64 px in 48 px tiles: 2 x 2


def test_upscale_by_two_and_with_alpha(harness: Harness) -> None:
    source = Image.new("RGBA", (24, 16), (10, 200, 30, 128))
    out = harness.run(Upscale, image=harness.put_image(source), scale=2, upscaler=UPSCALER).image
    result = harness.image(out)
    assert result.size == (48, 32) and result.mode == "RGBA"


def test_the_converted_x4plus_weights_are_detected_as_esrgan() -> None:
    from gpu_workers.models.upscalers import load_upscaler
    from tests.gpu_workers.diffusion_support import store_root

    descriptor = load_upscaler(Path(store_root() / "local" / "realesrgan-x4plus.safetensors"))
    assert (descriptor.architecture.name, descriptor.scale) == ("ESRGAN", 4)


# -- faces ---------------------------------------------------------------------------------------


def test_face_detail_changes_only_the_face_region(harness: Harness, astronaut: Image.Image) -> None:
    source = harness.put_image(astronaut)
    out = harness.run(
        FaceDetail, model=spec("sd15"), image=source, detail_size=64, strength=0.5, steps=4, padding=0.5
    )
    assert out.faces == 1
    before, after = np.asarray(astronaut, dtype=np.int16), pixels(harness, out.image)
    changed = np.argwhere(np.abs(after - before).max(axis=2) > 0)
    top, left = changed.min(axis=0)
    bottom, right = changed.max(axis=0)
    # OpenCV finds the face at x=177, y=66, 95x95; with padding 0.5 the crop is at most 190 px around it.
    assert left >= 177 - 48 and right <= 177 + 95 + 48 and top >= 66 - 48 and bottom <= 66 + 95 + 48
    assert len(changed) > 2000  # the face itself really was re-drawn


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_face_detail_works_with_the_other_image_families(
    harness: Harness, family: str, astronaut: Image.Image
) -> None:
    source = harness.put_image(astronaut.resize((256, 256)))
    out = harness.run(FaceDetail, model=spec(family), image=source, detail_size=64, steps=2, strength=0.6)
    assert out.faces == 1 and (out.image.width, out.image.height) == (256, 256)
    assert out.image.sha256 != source.sha256


def test_face_detail_returns_an_image_without_faces_unchanged(harness: Harness) -> None:
    source = harness.put_image(Image.fromarray(data.coffee()).resize((160, 120)))
    out = harness.run(FaceDetail, model=spec("sd15"), image=source, detail_size=64, steps=2)
    assert out.faces == 0 and out.image == source


# -- video ---------------------------------------------------------------------------------------


def read_mp4(harness: Harness, key: str, tmp_path: Path) -> list[np.ndarray]:
    path = tmp_path / "clip.mp4"
    path.write_bytes(harness.artifacts.get(key))
    reader = imageio.get_reader(str(path), format="FFMPEG")  # type: ignore[arg-type]
    # Not list(reader): the reader reports an unknown length as infinity, which list() tries to preallocate.
    return [frame for frame in reader]


def test_text_to_video_saves_a_playable_mp4_with_every_frame(harness: Harness, tmp_path: Path) -> None:
    clip = harness.run(TextToVideo, model=spec("video"), frames=5, width=64, height=80, fps=10, **FAST).video
    assert (clip.frames, clip.width, clip.height) == (5, 64, 80)
    mp4 = harness.run(SaveVideo, video=clip).video
    assert mp4.key.endswith(".mp4") and (mp4.frames, mp4.fps) == (5, 10)
    frames = read_mp4(harness, mp4.key, tmp_path)
    assert len(frames) == 5 and frames[0].shape == (80, 64, 3)


def test_image_to_video_animates_the_still(harness: Harness, tmp_path: Path, astronaut: Image.Image) -> None:
    still = harness.put_image(astronaut.resize((64, 64)))
    clip = harness.run(
        ImageToVideo, model=spec("video"), image=still, frames=4, strength=0.6, steps=4, seed=1
    ).video
    assert (clip.frames, clip.width, clip.height) == (4, 64, 64)
    mp4 = harness.run(SaveVideo, video=clip, fps=4).video
    frames = read_mp4(harness, mp4.key, tmp_path)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    assert np.abs(frames[0].astype(int) - frames[3].astype(int)).mean() > 1  # the frames differ: it moves
