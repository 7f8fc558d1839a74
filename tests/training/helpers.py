"""Files people upload, good and bad, made in memory."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterable

import numpy as np
from PIL import Image


def png(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def smooth_png(
    width: int = 64, height: int = 64, seed: int = 0, *, fmt: str = "PNG", **save: object
) -> bytes:
    """A picture with structure (gradients and a disc), so perceptual hashes are meaningful."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    cx, cy, r = (
        rng.uniform(0.2, 0.8) * width,
        rng.uniform(0.2, 0.8) * height,
        rng.uniform(0.1, 0.3) * min(width, height),
    )
    base = np.stack(
        [
            x / width * 255 * rng.uniform(0.3, 1),
            y / height * 255 * rng.uniform(0.3, 1),
            np.full_like(x, rng.uniform(0, 255), dtype=float),
        ],
        axis=-1,
    )
    base[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    image = Image.fromarray(base.astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def zip_of(entries: Iterable[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_with_info(infos: Iterable[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, data in infos:
            archive.writestr(info, data)
    return buffer.getvalue()


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def upload(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def mp4(frames: int = 12, width: int = 96, height: int = 64, fps: int = 6) -> bytes:
    return video(frames, width, height, fps)


def webm(frames: int = 12, width: int = 96, height: int = 64, fps: int = 6) -> bytes:
    """A VP9 WebM clip (what browsers record), made with imageio-ffmpeg's bundled ffmpeg."""
    return video(frames, width, height, fps, suffix=".webm", codec="libvpx-vp9")


def video(
    frames: int, width: int, height: int, fps: int, *, suffix: str = ".mp4", codec: str = "libx264"
) -> bytes:
    import tempfile

    import imageio_ffmpeg

    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        writer = imageio_ffmpeg.write_frames(
            handle.name, (width, height), fps=fps, codec=codec, macro_block_size=1,
            output_params=["-loglevel", "error"],
        )
        writer.send(None)
        for index in range(frames):
            frame = np.zeros((height, width, 3), dtype=np.uint8)
            frame[:, : (index + 1) * width // frames] = (40 + 15 * index, 120, 200 - 10 * index)
            writer.send(frame.tobytes())
        writer.close()
        return open(handle.name, "rb").read()


def build_tiny_captioner(folder) -> None:
    """A random-weight BLIP captioning model, biased to say "cat": enough to show its words are used."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "on", "sofa", "[DEC]"]
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(vocab)}, bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    config = BlipConfig(
        text_config={**small, "vocab_size": len(vocab), "encoder_hidden_size": 32, "bos_token_id": 9,
                     "sep_token_id": 3, "pad_token_id": 0},
        vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=32,
    )
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.bias
        bias.fill_(-10.0)
        bias[vocab.index("cat")] = 10.0
    model.generation_config.max_new_tokens = 3
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
