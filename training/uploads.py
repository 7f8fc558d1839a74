"""Safe intake of training images: everything is checked and decoded in memory before anything is
written, and every refusal names the file and says what to fix (U1-U3).

- Files are recognised by their content (magic bytes), never by their name; a file whose name claims
  one kind and whose bytes are another is refused ("disguised").
- Zips: entries with ``..``, absolute paths, symlinks, encryption, duplicate names, too many entries,
  too many bytes, or a suspicious compression ratio refuse the whole upload before one entry is read;
  entries are then read with a hard cap (a header that lies about sizes is caught) and CRC-checked.
  macOS resource forks (``__MACOSX/``) and hidden files are skipped.
- Images: the header's size is checked against a pixel cap before decoding; Pillow's decompression
  bomb warning is an error; ``verify()`` catches damaged files; then EXIF orientation is applied and
  the image is re-encoded as a PNG without metadata (no EXIF, no GPS, no ICC).
- Videos (MP4, WebM): duration and frame size are checked, then frames are sampled evenly with ffmpeg
  (imageio-ffmpeg) and treated as images.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tempfile
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import IO, Any

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from gpu_workers.sdk import encode_png
from gpu_workers.training.images import perceptual_hash

MiB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    max_files: int = 200  # images in a dataset after zips are expanded and videos sampled
    max_upload_bytes: int = 500 * MiB  # all uploaded files together, as sent
    max_zip_entries: int = 1000
    max_zip_bytes: int = 1024 * MiB  # uncompressed, all entries
    max_entry_bytes: int = 100 * MiB  # uncompressed, one entry
    max_ratio: float = 100.0  # uncompressed / compressed, above which an entry is a likely zip bomb
    ratio_floor_bytes: int = 256 * 1024  # small entries may compress well without being bombs
    max_pixels: int = 40_000_000
    min_side: int = 32
    max_stored_side: int = 2048
    max_video_seconds: float = 600.0
    frames_per_video: int = 8

    @classmethod
    def from_settings(cls) -> UploadLimits:
        return replace(cls(), **getattr(settings, "KIZY_TRAINING_UPLOAD_LIMITS", {}))


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "problem": self.message}


class UploadRefused(Exception):
    """Nothing was kept; ``problems`` lists each file at fault and what to do about it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" ({len(problems) - 1} more problem(s) below)" if len(problems) > 1 else ""
        super().__init__(f"{first.file}: {first.message}{more}" if first.file else first.message + more)


@dataclass
class ProcessedImage:
    source_name: str
    kind: str  # "image" | "video_frame"
    png: bytes
    width: int
    height: int
    sha256: str = ""
    phash: str = ""

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.png).hexdigest()


@dataclass
class Intake:
    images: list[ProcessedImage] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


# -- recognising content ---------------------------------------------------------------------------

IMAGE_KINDS = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}
VIDEO_KINDS = {"mp4": "MP4", "webm": "WebM"}
EXTENSIONS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".jfif": "jpeg",
    ".webp": "webp",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mp4",
    ".webm": "webm",
    ".mkv": "webm",
    ".zip": "zip",
    ".gif": "gif",
    ".heic": "heic",
    ".heif": "heic",
    ".avif": "heic",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}
UNSUPPORTED = {
    "gif": "GIF is not supported; export the frames you want as PNG (or the clip as MP4)",
    "heic": "HEIC/AVIF photos are not supported; export them as JPEG or PNG (on iPhone: Settings → Camera → "
    "Formats → Most Compatible)",
    "tiff": "TIFF is not supported; export it as PNG",
    "bmp": "BMP is not supported; export it as PNG",
}
ACCEPTED = "PNG, JPEG or WebP images, MP4 or WebM videos, or a zip of them"


def sniff(head: bytes) -> str:
    """The kind of a file from its first bytes: png, jpeg, webp, mp4, webm, zip, gif, heic, ... or 'other'."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "heic" if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"hevc") else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    return "other"


def _describe_other(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<svg", b"<?xml")):
        return "an HTML/SVG/XML document"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")):
        return "a compressed archive other than zip"
    if head.startswith(b"\x7fELF") or head.startswith(b"MZ"):
        return "a program"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "an unknown binary file"


def _extension(name: str) -> str:
    match = re.search(r"(\.[A-Za-z0-9]+)$", name)
    return match.group(1).lower() if match else ""


def _check_disguise(name: str, kind: str, head: bytes) -> str | None:
    claimed = EXTENSIONS.get(_extension(name))
    if claimed is None or claimed == kind:
        return None
    if {claimed, kind} <= {"png", "jpeg", "webp"}:
        return None  # a JPEG saved as .png is common and harmless: it is decoded and re-encoded anyway
    if {claimed, kind} <= {"mp4", "webm"}:
        return None
    shown = (
        IMAGE_KINDS.get(kind)
        or VIDEO_KINDS.get(kind)
        or (kind.upper() if kind != "other" else _describe_other(head))
    )
    return (
        f"the name says {_extension(name)} but the file is {shown}; "
        "it was refused because it is disguised. Export it again in one of: " + ACCEPTED
    )


# -- images ----------------------------------------------------------------------------------------


def process_image(name: str, data: bytes, kind: str, limits: UploadLimits) -> ProcessedImage:
    """Verify under the pixel cap, decode, orient, strip metadata, re-encode as PNG. ValueError says why."""
    formats = {"png": ["PNG"], "jpeg": ["JPEG", "MPO"], "webp": ["WEBP"]}[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=formats)
            width, height = probe.size
            if width * height > limits.max_pixels:
                raise ValueError(
                    f"it is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), over the limit "
                    f"of {limits.max_pixels / 1e6:.0f} megapixels; scale it down (2048 px on the long side "
                    "is plenty)"
                )
            if min(width, height) < limits.min_side:
                raise ValueError(
                    f"it is only {width}×{height} pixels; the smallest accepted is {limits.min_side} px on "
                    "the short side (and 512 px or more trains a sharper LoRA)"
                )
            probe.verify()
            image = Image.open(io.BytesIO(data), formats=formats)
            image.load()
    except ValueError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        cap = min(limits.max_pixels, Image.MAX_IMAGE_PIXELS or limits.max_pixels)
        raise ValueError(
            f"it claims an enormous size (over {cap / 1e6:g} megapixels) and was refused "
            "as a possible decompression bomb; scale it down (2048 px on the long side is plenty)"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, struct.error) as exc:
        raise ValueError(
            f"the {IMAGE_KINDS[kind]} data is damaged or truncated ({type(exc).__name__}); "
            "open it in an image editor and export it again"
        ) from exc
    image = ImageOps.exif_transpose(image) or image
    return _finish_image(name, image, "image", limits)


def _finish_image(name: str, image: Image.Image, kind: str, limits: UploadLimits) -> ProcessedImage:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    if max(image.size) > limits.max_stored_side:
        image.thumbnail((limits.max_stored_side, limits.max_stored_side), Image.Resampling.LANCZOS)
    png = encode_png(image)
    return ProcessedImage(
        source_name=name,
        kind=kind,
        png=png,
        width=image.width,
        height=image.height,
        phash=perceptual_hash(image),
    )


# -- videos ----------------------------------------------------------------------------------------


def process_video(name: str, data: bytes, kind: str, limits: UploadLimits) -> list[ProcessedImage]:
    """Sample ``frames_per_video`` frames evenly across the clip. ValueError says what is wrong."""
    import imageio_ffmpeg

    suffix = ".webm" if kind == "webm" else ".mp4"
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            reader = imageio_ffmpeg.read_frames(
                handle.name, input_params=["-t", str(limits.max_video_seconds)]
            )
            meta: dict[str, Any] = next(reader)
            reader.close()
        except (RuntimeError, OSError, StopIteration) as exc:
            raise ValueError(
                f"it could not be read as a {VIDEO_KINDS[kind]} video; export it again as MP4 (H.264) or WebM"
            ) from exc
        width, height = meta.get("size") or (0, 0)
        duration = float(meta.get("duration") or 0.0)
        if not width or not height:
            raise ValueError("the video has no picture track")
        if width * height > limits.max_pixels:
            raise ValueError(
                f"its frames are {width}×{height} pixels, over the limit of "
                f"{limits.max_pixels / 1e6:.0f} megapixels; export it at 1080p or less"
            )
        if duration > limits.max_video_seconds:
            raise ValueError(
                f"it lasts {duration:.0f} s; the limit is {limits.max_video_seconds:.0f} s — "
                "trim it to the part you want to train on"
            )
        wanted = limits.frames_per_video
        rate = f"{wanted}/{duration:.3f}" if duration > 0 else "1"
        frames: list[ProcessedImage] = []
        try:
            reader = imageio_ffmpeg.read_frames(
                handle.name,
                output_params=["-vf", f"fps={rate}"],
                input_params=["-t", str(limits.max_video_seconds)],
            )
            out_meta = next(reader)
            out_w, out_h = out_meta["size"]
            for index, frame in enumerate(reader):
                if index >= wanted:
                    break
                image = Image.frombytes("RGB", (out_w, out_h), frame)
                seconds = (index + 0.5) * duration / wanted if duration > 0 else float(index)
                frames.append(
                    _finish_image(f"{name} (frame at {seconds:.1f} s)", image, "video_frame", limits)
                )
            reader.close()
        except (RuntimeError, OSError, ValueError) as exc:
            raise ValueError(
                f"its frames could not be decoded ({exc}); export it again as MP4 (H.264) or WebM"
            ) from exc
    if not frames:
        raise ValueError("no frames could be read from it; export it again as MP4 (H.264) or WebM")
    return frames


# -- zips ------------------------------------------------------------------------------------------


def _is_skipped(name: str) -> bool:
    parts = [p for p in re.split(r"[/\\]", name) if p]
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith(".") or parts[-1] == "Thumbs.db")


def vet_zip(archive: zipfile.ZipFile, zip_name: str, limits: UploadLimits) -> list[zipfile.ZipInfo]:
    """Refuse the archive for the first structural problem; return the entries worth reading."""
    infos = archive.infolist()
    if len(infos) > limits.max_zip_entries:
        raise UploadRefused(
            [
                Problem(
                    zip_name,
                    f"it has {len(infos)} entries; the limit is {limits.max_zip_entries}. "
                    "Split it into smaller zips or remove what is not an image",
                )
            ]
        )
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    total = 0
    chosen = []
    for info in infos:
        name = info.filename
        where = f"{zip_name} → {name}"
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            problems.append(
                Problem(
                    where, "the entry has an absolute path; zip the folder's contents, not absolute paths"
                )
            )
            continue
        if any(part == ".." for part in re.split(r"[/\\]", name)):
            problems.append(
                Problem(
                    where,
                    "the entry's path contains '..' (it would be written outside the "
                    "upload); zip the images again from their folder",
                )
            )
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            problems.append(Problem(where, "the entry is a symbolic link; put the image itself in the zip"))
            continue
        if info.flag_bits & 0x1:
            problems.append(Problem(where, "the entry is encrypted; zip the images without a password"))
            continue
        if info.is_dir() or _is_skipped(name):
            continue
        normalized = unicodedata.normalize("NFC", name.replace("\\", "/")).casefold()
        if normalized in seen:
            problems.append(
                Problem(
                    where,
                    f"the name appears twice in the zip (also as {seen[normalized]!r}); rename one of them",
                )
            )
            continue
        seen[normalized] = name
        if info.file_size > limits.max_entry_bytes:
            problems.append(
                Problem(
                    where,
                    f"it unpacks to {info.file_size / MiB:.0f} MiB; the limit per file is "
                    f"{limits.max_entry_bytes / MiB:.0f} MiB",
                )
            )
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            problems.append(
                Problem(
                    where,
                    f"it is compressed {ratio:.0f}:1, which only happens for zip bombs or "
                    "padding (images barely compress); the zip was refused",
                )
            )
            continue
        total += info.file_size
        chosen.append(info)
    if total > limits.max_zip_bytes:
        problems.append(
            Problem(
                zip_name,
                f"it unpacks to {total / MiB:.0f} MiB; the limit is "
                f"{limits.max_zip_bytes / MiB:.0f} MiB. Split it or use smaller images",
            )
        )
    if problems:
        raise UploadRefused(problems)
    return chosen


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read an entry, never more than its declared size (+1 to notice a lie)."""
    with archive.open(info) as handle:
        data = handle.read(min(info.file_size, cap) + 1)
    if len(data) > info.file_size or len(data) > cap:
        raise ValueError("it holds more data than its zip header says; the zip was refused as malformed")
    return data


# -- the whole upload ------------------------------------------------------------------------------


class _Collector:
    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.intake = Intake()
        self.problems: list[Problem] = []
        self.seen: dict[str, str] = {}

    def add(self, processed: ProcessedImage) -> None:
        if processed.sha256 in self.seen:
            self.intake.notices.append(
                f"{processed.source_name} is identical to {self.seen[processed.sha256]}; kept once"
            )
            return
        self.seen[processed.sha256] = processed.source_name
        self.intake.images.append(processed)

    def file(self, name: str, data: bytes, *, inside_zip: bool = False) -> None:
        kind = sniff(data[:64])
        if (message := _check_disguise(name, kind, data[:512])) is not None:
            self.problems.append(Problem(name, message))
            return
        try:
            if kind in IMAGE_KINDS:
                self.add(process_image(name, data, kind, self.limits))
            elif kind in VIDEO_KINDS:
                for frame in process_video(name, data, kind, self.limits):
                    self.add(frame)
            elif kind == "zip":
                if inside_zip:
                    self.problems.append(
                        Problem(name, "a zip inside a zip is not unpacked; put the images in one zip")
                    )
                else:
                    self.zip(name, data)
            elif kind in UNSUPPORTED:
                self.problems.append(Problem(name, UNSUPPORTED[kind]))
            else:
                self.problems.append(
                    Problem(
                        name,
                        f"it is not an image or a video (it looks like "
                        f"{_describe_other(data[:512])}); upload {ACCEPTED}",
                    )
                )
        except ValueError as exc:
            self.problems.append(Problem(name, str(exc)))

    def zip(self, name: str, data: bytes) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            self.problems.append(Problem(name, f"it is not a valid zip file ({exc}); zip the images again"))
            return
        with archive:
            entries = vet_zip(archive, name, self.limits)
            if not entries:
                self.problems.append(Problem(name, f"the zip holds no files; put {ACCEPTED} in it"))
                return
            for info in entries:
                where = f"{name} → {info.filename}"
                try:
                    content = _read_capped(archive, info, self.limits.max_entry_bytes)
                except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
                    self.problems.append(
                        Problem(where, f"it could not be unpacked ({exc}); zip the images again")
                    )
                    continue
                self.file(where, content, inside_zip=True)


def read_uploads(
    files: Iterable[tuple[str, IO[bytes]]], *, limits: UploadLimits | None = None, already_stored: int = 0
) -> Intake:
    """Check and decode every file (name, binary handle); raise ``UploadRefused`` if any is at fault.

    Nothing is written by this function: callers store ``Intake.images`` only when it returns.
    """
    limits = limits or UploadLimits.from_settings()
    collector = _Collector(limits)
    files = list(files)
    if not files:
        raise UploadRefused([Problem("", f"No files were sent; upload {ACCEPTED} in the field 'images'.")])
    sizes = [getattr(handle, "size", None) for _, handle in files]
    total = sum(size for size in sizes if size is not None)
    if total > limits.max_upload_bytes:
        raise UploadRefused(
            [
                Problem(
                    "",
                    f"The upload is {total / MiB:.0f} MiB; the limit is "
                    f"{limits.max_upload_bytes / MiB:.0f} MiB. Send the images in parts.",
                )
            ]
        )
    for name, handle in files:
        safe_name = _display_name(name)
        data = handle.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            collector.problems.append(
                Problem(safe_name, f"it is over {limits.max_upload_bytes / MiB:.0f} MiB")
            )
            continue
        if not data:
            collector.problems.append(Problem(safe_name, "the file is empty"))
            continue
        try:
            collector.file(safe_name, data)
        except UploadRefused as refused:
            collector.problems.extend(refused.problems)
    count = already_stored + len(collector.intake.images)
    if not collector.problems and count > limits.max_files:
        collector.problems.append(
            Problem(
                "",
                f"That makes {count} images; a dataset holds at most "
                f"{limits.max_files}. Pick your best ones (20-50 is plenty).",
            )
        )
    if collector.problems:
        raise UploadRefused(collector.problems)
    if not collector.intake.images:
        raise UploadRefused([Problem("", f"No images were found in the upload; send {ACCEPTED}.")])
    return collector.intake


def _display_name(name: str) -> str:
    """The client's file name, reduced to printable characters (it is only ever shown, never a path)."""
    cleaned = "".join(ch for ch in (name or "upload") if ch.isprintable())
    return cleaned[-200:] or "upload"


def too_many_files() -> UploadRefused:
    """The refusal for a request with more loose files than Django parses (DATA_UPLOAD_MAX_NUMBER_FILES)."""
    most = int(getattr(settings, "DATA_UPLOAD_MAX_NUMBER_FILES", None) or UploadLimits.from_settings().max_files)
    return UploadRefused(
        [
            Problem(
                "",
                f"Too many files in one upload: send at most {most} at a time, or put them in a zip "
                f"(a dataset holds at most {UploadLimits.from_settings().max_files} images; 20-50 is plenty).",
            )
        ]
    )
