"""Small WebP thumbnails of image outputs for the gallery and the studio's Recent strip, so a page of
tiles does not download full-size (possibly ×4 upscaled) PNGs. Written when the outputs are recorded,
content-addressed under the workspace's prefix like every artifact; no EXIF or other metadata."""
from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

from PIL import Image

from gpu_workers.artifacts import artifact_key

from .engine import StorageArtifactStore

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 384  # the longest side, in pixels: sharp on a 2× screen for tiles of about 190 px
THUMBNAIL_QUALITY = 80


def thumbnail_webp(png: bytes, side: int = THUMBNAIL_SIDE) -> tuple[bytes, int, int]:
    """WebP bytes of the image scaled down to `side` on its longest edge (never up), and its size."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        rgb = image.convert("RGB")  # drops EXIF, ICC and text chunks with the original's info
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="WEBP", quality=THUMBNAIL_QUALITY, method=4)
    return out.getvalue(), rgb.width, rgb.height


def with_thumbnails(files: list[dict[str, Any]], *, workspace_id: str) -> list[dict[str, Any]]:
    """The output list with `thumbnail_key` (and its size) added to each image. A thumbnail that cannot
    be made is logged and left out: the gallery then shows the full image, and the job still succeeds."""
    store = StorageArtifactStore()
    for item in files:
        if item.get("kind") != "image" or "thumbnail_key" in item:
            continue
        try:
            data, width, height = thumbnail_webp(store.get(item["key"]))
        except Exception:  # a missing or unreadable output must not fail a finished job
            logger.exception("No thumbnail for %s", item.get("key"))
            continue
        key = artifact_key(workspace_id, hashlib.sha256(data).hexdigest(), "webp")
        store.put(key, data, "image/webp")
        item.update(thumbnail_key=key, thumbnail_width=width, thumbnail_height=height)
    return files
