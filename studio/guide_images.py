"""Guide images arrive as an upload, a data URI, or a link to a file of the same workspace.
Each is verified with Pillow under a pixel cap, re-encoded as PNG without metadata (U2, U3), and
stored content-addressed under the workspace's prefix; the graph receives only its key."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError
from rest_framework.exceptions import ValidationError

from accounts.models import Workspace
from gpu_workers.artifacts import InvalidArtifactKey, artifact_key, belongs_to_workspace, check_key

from .engine import StorageArtifactStore

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
_DATA_URI = re.compile(r"^data:(image/(?:png|jpeg|webp));base64,(.+)$", re.DOTALL)


def _error(message: str) -> ValidationError:
    return ValidationError({"image": message})


def clean_image_bytes(data: bytes) -> tuple[bytes, int, int]:
    """Verify and re-encode; refuse bombs before decoding pixels."""
    if len(data) > MAX_BYTES:
        raise _error(f"The guide image is larger than {MAX_BYTES // 1024 // 1024} MB; use a smaller file.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ("PNG", "JPEG", "WEBP"):
                raise _error(f"Guide images must be PNG, JPEG or WebP; this is {probe.format or 'unknown'}.")
            if probe.width * probe.height > MAX_PIXELS:
                raise _error(f"The guide image is {probe.width}×{probe.height}; the limit is "
                             f"{MAX_PIXELS} pixels. Resize it first.")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _error("The guide image could not be read as an image; upload a PNG, JPEG or WebP file.") from exc
    out = io.BytesIO()
    rgb.save(out, format="PNG")  # no EXIF, no text chunks
    return out.getvalue(), rgb.width, rgb.height


def _storage_url_prefix() -> str | None:
    """Where the configured S3/R2 storage's links to keys start (`https://host/bucket/location/`), or
    None on the filesystem backend. Learnt from the storage's own link to a probe key, so the bucket,
    custom domain and `AWS_LOCATION` are stripped exactly as the storage adds them."""
    from django.core.files.storage import storages

    from kizy_site.storage import PrivateFileSystemStorage

    backend = storages["default"]
    if isinstance(backend, PrivateFileSystemStorage):
        return None
    probe = "ws/kizy-probe/artifacts/probe.png"
    parts = urlsplit(str(backend.url(probe)))
    path = unquote(parts.path)
    if not path.endswith(probe):
        return None
    return f"{parts.scheme}://{parts.netloc}{path[: -len(probe)]}" if parts.netloc else path[: -len(probe)]


def _key_from_link(value: str) -> str:
    """The storage key a link points at: `/files/<key>`, a presigned URL of this site's bucket, or a bare key."""
    if "://" not in value and not value.startswith("/"):
        return value
    parts = urlsplit(value)
    path = unquote(parts.path)
    if "/files/" in path:  # read from this site's storage by key, never fetched over the network
        return path.split("/files/", 1)[1]
    prefix = _storage_url_prefix()
    if prefix is not None:
        here = f"{parts.scheme}://{parts.netloc}{path}" if parts.netloc else path
        if here.startswith(prefix):
            return here[len(prefix):]
    return ""


def _own_file_key(value: str, workspace: Workspace) -> str | None:
    """A `/files/<key>?…` link, a presigned link into this site's bucket, or a bare key (the outputs'
    `key`); None when it is none of these. Keys of another workspace are refused (T3)."""
    key = _key_from_link(value)
    if not key.startswith("ws/"):
        return None
    try:
        check_key(key)
    except InvalidArtifactKey as exc:
        raise _error("That file link is malformed.") from exc
    if not belongs_to_workspace(key, str(workspace.pk)):
        raise _error("That file belongs to another workspace or does not exist.")
    return key


def store_guide_image(*, workspace: Workspace, value: Any) -> dict[str, Any] | None:
    """Store the guide image and return an ImageRef-shaped dict, or None when there is none."""
    if value in (None, ""):
        return None
    store = StorageArtifactStore()
    if isinstance(value, UploadedFile):
        raw = value.read(MAX_BYTES + 1)
    elif isinstance(value, str) and (match := _DATA_URI.match(value.strip())):
        try:
            raw = base64.b64decode(match.group(2), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise _error("The data URI is not valid base64.") from exc
    elif isinstance(value, str) and (key := _own_file_key(value.strip(), workspace)) is not None:
        if not store.exists(key):
            raise _error("That file belongs to another workspace or does not exist.")
        raw = store.get(key)
    else:
        raise _error("Give the guide image as an upload, a data:image/...;base64 URI, or a link to one of "
                     "this workspace's files. Other web addresses are not fetched.")
    png, width, height = clean_image_bytes(raw)
    sha = hashlib.sha256(png).hexdigest()
    key = artifact_key(str(workspace.pk), sha, "png")
    store.put(key, png, "image/png")
    return {"key": key, "sha256": sha, "width": width, "height": height}
