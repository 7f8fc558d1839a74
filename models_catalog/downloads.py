"""Fetch one weights file safely: resume, size cap, SHA-256 check, pickle refusal, header check.

A file is streamed to `<dest>.part` (kept between attempts so a later try resumes with an HTTP Range
request), hashed as it arrives, and only moved to `dest` once its size, its hash and — for weights —
its safetensors header are right. A file that fails any check is deleted: it is never kept (M3), and a
pickle is refused before a byte is fetched (M1), because unpickling can run arbitrary code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gpu_workers.models.errors import UnsafeModelFileError
from gpu_workers.models.safetensors_check import read_safetensors_header

from .normalize.types import PICKLE_SUFFIXES

CHUNK = 1 << 20
CONFIG_SUFFIXES = (".json", ".txt", ".model")
Progress = Callable[[int, int | None], None]


class DownloadRefused(Exception):
    """The file was not kept; the message says why in words an artist or operator can act on."""


class HashMismatch(DownloadRefused):
    pass


class TooLarge(DownloadRefused):
    pass


@dataclass
class DownloadSpec:
    url: str
    dest: Path
    expected_sha256: str = ""
    expected_git_sha1: str = ""
    expected_size: int | None = None
    max_bytes: int = 30 * 1024**3
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str = ""  # the file's real name when `dest` is a content-addressed blob

    @property
    def filename(self) -> str:
        return self.name or self.dest.name

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")


def refuse_unsafe_name(name: str) -> None:
    lowered = name.lower()
    if lowered.endswith(PICKLE_SUFFIXES):
        raise DownloadRefused(
            f"{name} is refused: {Path(name).suffix} files are Python pickles, and loading a pickle can run "
            "arbitrary code on the machine. Kizy only keeps .safetensors weights; pick a safetensors version."
        )
    if not lowered.endswith((".safetensors", *CONFIG_SUFFIXES)):
        raise DownloadRefused(
            f"{name} is refused: only .safetensors weights (and their JSON configs) are kept"
        )


def _looks_like_pickle(head: bytes) -> bool:
    # A raw pickle starts with the PROTO opcode; torch.save writes a zip archive around one.
    return head[:1] == b"\x80" or head[:4] == b"PK\x03\x04"


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def download_file(spec: DownloadSpec, *, client: httpx.Client, progress: Progress | None = None) -> Path:
    """Download `spec.url` to `spec.dest`; raise `DownloadRefused` (file not kept) or httpx errors."""
    name = spec.filename
    refuse_unsafe_name(name)
    if spec.expected_size is not None and spec.expected_size > spec.max_bytes:
        raise TooLarge(
            f"{name} is {spec.expected_size:,} bytes, over this site's download limit of {spec.max_bytes:,} "
            "bytes "
            "(KIZY_CATALOG_MAX_DOWNLOAD_BYTES)"
        )
    spec.dest.parent.mkdir(parents=True, exist_ok=True)
    part = spec.part
    digest = hashlib.sha256()
    done = 0
    if part.exists():
        with part.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
                done += len(chunk)
    headers = dict(spec.headers)
    if done:
        headers["Range"] = f"bytes={done}-"
    with client.stream("GET", spec.url, headers=headers) as response:
        if response.status_code == 416 and done:
            pass  # the partial file is already complete; verify it below
        elif response.status_code not in (200, 206):
            raise DownloadRefused(f"{name}: the server answered HTTP {response.status_code}")
        else:
            if response.status_code == 206 and not response.headers.get("Content-Range", "").startswith(
                f"bytes {done}-"
            ):
                raise DownloadRefused(f"{name}: the server resumed at the wrong offset; try again")
            if response.status_code == 200 and done:
                digest, done = hashlib.sha256(), 0  # the server ignored Range: start over
            length = response.headers.get("Content-Length")
            total = done + int(length) if length and length.isdigit() else spec.expected_size
            if total is not None and total > spec.max_bytes:
                _discard(part)
                raise TooLarge(
                    f"{name} is {total:,} bytes, over the download limit of {spec.max_bytes:,} bytes"
                )
            with part.open("ab" if done else "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    done += len(chunk)
                    if done > spec.max_bytes:
                        out.close()
                        _discard(part)
                        raise TooLarge(
                            f"{name} grew past the download limit of {spec.max_bytes:,} bytes; not kept"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(done, total)
    _verify(spec, part, digest.hexdigest(), done)
    os.replace(part, spec.dest)
    return spec.dest


def _verify(spec: DownloadSpec, part: Path, sha256: str, size: int) -> None:
    name = spec.filename
    if spec.expected_size is not None and size != spec.expected_size and not spec.expected_sha256:
        _discard(part)
        raise HashMismatch(f"{name}: got {size:,} bytes, the source says {spec.expected_size:,}; not kept")
    if spec.expected_sha256 and sha256.lower() != spec.expected_sha256.lower():
        _discard(part)
        raise HashMismatch(
            f"{name}: SHA-256 {sha256} does not match the {spec.expected_sha256.lower()} the source "
            "publishes; "
            "the file was deleted, not kept (a corrupted or tampered download)"
        )
    if spec.expected_git_sha1 and _git_blob_sha1(part) != spec.expected_git_sha1.lower():
        _discard(part)
        raise HashMismatch(f"{name}: content does not match the source's git blob id; not kept")
    if name.lower().endswith(".safetensors"):
        with part.open("rb") as handle:
            head = handle.read(8)
        if _looks_like_pickle(head):
            _discard(part)
            raise DownloadRefused(
                f"{name} is a pickle file disguised as .safetensors; refused, loading it could run "
                "arbitrary code"
            )
        try:
            read_safetensors_header(part)
        except UnsafeModelFileError as exc:
            _discard(part)
            raise DownloadRefused(str(exc).replace(part.name, name)) from exc


def check_local_weights(path: Path) -> None:
    """The same safety checks for a file that arrived another way (an upload, a local folder)."""
    refuse_unsafe_name(path.name)
    if path.suffix.lower() == ".safetensors":
        with path.open("rb") as handle:
            if _looks_like_pickle(handle.read(8)):
                raise DownloadRefused(f"{path.name} is a pickle file disguised as .safetensors; refused")
        try:
            read_safetensors_header(path)
        except UnsafeModelFileError as exc:
            raise DownloadRefused(str(exc)) from exc
