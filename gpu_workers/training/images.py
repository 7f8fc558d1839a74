"""Image geometry shared by the dataset checks and the trainer: aspect-ratio buckets, the crop that
fits an image into its bucket, and a perceptual hash for near-duplicate detection.

Buckets follow kohya's sd-scripts: every bucket holds about ``resolution²`` pixels, sides are
multiples of a step the denoiser can downsample (64 px at real resolutions), and aspect ratios stay
within 1:2 .. 2:1, so a portrait photo trains as a portrait instead of being cropped to a square.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_ASPECT = 2.0


def bucket_step(resolution: int) -> int:
    """Side granularity: 64 px (what SD/SDXL/Flux need at real sizes); finer for tiny test models."""
    return 64 if resolution >= 256 else max(16, resolution // 4)


def buckets_for(resolution: int) -> list[tuple[int, int]]:
    """All (width, height) buckets of about ``resolution²`` pixels, squarest first."""
    step = bucket_step(resolution)
    area = resolution * resolution
    found: set[tuple[int, int]] = {(resolution, resolution)}
    width = step
    while width <= resolution * MAX_ASPECT:
        height = (area // width) // step * step
        if height >= step and max(width, height) / min(width, height) <= MAX_ASPECT:
            found.add((width, height))
        width += step
    return sorted(found, key=lambda wh: (abs(np.log(wh[0] / wh[1])), wh))


def nearest_bucket(width: int, height: int, resolution: int, *, use_buckets: bool = True) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to the image's (a square when buckets are off)."""
    if not use_buckets:
        return resolution, resolution
    ratio = np.log(width / height)
    return min(buckets_for(resolution), key=lambda wh: (abs(np.log(wh[0] / wh[1]) - ratio), -wh[0] * wh[1]))


@dataclass(frozen=True)
class Fitted:
    image: Image.Image
    crop_top: int
    crop_left: int


def fit_to_bucket(image: Image.Image, bucket: tuple[int, int]) -> Fitted:
    """Scale ``image`` to cover the bucket, then centre-crop it (the crop goes to SDXL's time ids)."""
    target_w, target_h = bucket
    scale = max(target_w / image.width, target_h / image.height)
    resized_w, resized_h = (
        max(target_w, round(image.width * scale)),
        max(target_h, round(image.height * scale)),
    )
    resized = image.convert("RGB").resize((resized_w, resized_h), Image.Resampling.LANCZOS)
    left, top = (resized_w - target_w) // 2, (resized_h - target_h) // 2
    return Fitted(resized.crop((left, top, left + target_w, top + target_h)), top, left)


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    matrix: np.ndarray = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2 / size)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT32 = _dct_matrix(32)


def perceptual_hash(image: Image.Image) -> str:
    """64-bit DCT hash (pHash) as 16 hex digits: near-identical pictures differ in a few bits."""
    small = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT32 @ small @ _DCT32.T)[:8, :8].flatten()
    bits = low[1:] > np.median(low[1:])  # the DC term only says how bright the image is
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hash_distance(first: str, second: str) -> int:
    return (int(first, 16) ^ int(second, 16)).bit_count()
