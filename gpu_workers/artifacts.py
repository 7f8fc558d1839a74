"""Where node outputs live: a tiny key/value store of bytes, keyed per workspace.

Data flows through a graph by reference (DESIGN §4): a node writes an image once and passes its key,
so the control plane never carries pixels. The base class is deliberately small because the Django
side implements it again over django-storages (S3/R2/filesystem); anything more than
put/get/exists would have to be written twice.

Key layout, always under the workspace's prefix so one tenant can never name another's files:

- ``ws/<workspace_id>/artifacts/<sha256>.<ext>``      content-addressed outputs (images, latents...)
- ``ws/<workspace_id>/checkpoints/<checkpoint>.json`` node output records reused across jobs
- ``ws/<workspace_id>/jobs/<job_id>/<node_id>.json``  nodes a given job has finished (resume)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# One path segment: letters, digits, dot, dash, underscore; never "." or ".." (no traversal).
_SEGMENT = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXT = re.compile(r"^[a-z0-9]{1,16}$")


class ArtifactNotFound(KeyError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no artifact is stored under {self.key!r}"


class InvalidArtifactKey(ValueError):
    """The key is not one this store accepts (bad characters, traversal, wrong workspace)."""


def check_key(key: str) -> str:
    """Return ``key`` if every segment is safe; refuse absolute paths and ``..`` segments."""
    if not key or key.startswith("/") or not all(_SEGMENT.match(part) for part in key.split("/")):
        raise InvalidArtifactKey(f"artifact key {key!r} is not valid")
    return key


def check_segment(value: str, what: str) -> str:
    """Refuse ids that would not be a single safe key segment (used for workspace, job, node ids)."""
    if not _SEGMENT.match(value):
        raise InvalidArtifactKey(f"{what} {value!r} may only use letters, digits, '.', '-' and '_'")
    return value


def workspace_prefix(workspace_id: str) -> str:
    return f"ws/{check_segment(workspace_id, 'workspace id')}/"


def artifact_key(workspace_id: str, sha256: str, ext: str) -> str:
    """Content address of an output: same bytes, same key, so identical outputs are stored once."""
    ext = ext.lstrip(".").lower()
    if not _SHA256.match(sha256):
        raise InvalidArtifactKey(f"{sha256!r} is not a lowercase hex SHA-256")
    if not _EXT.match(ext):
        raise InvalidArtifactKey(f"file extension {ext!r} is not valid")
    return f"{workspace_prefix(workspace_id)}artifacts/{sha256}.{ext}"


def checkpoint_key(workspace_id: str, checkpoint: str) -> str:
    if not _SHA256.match(checkpoint):
        raise InvalidArtifactKey(f"{checkpoint!r} is not a lowercase hex SHA-256")
    return f"{workspace_prefix(workspace_id)}checkpoints/{checkpoint}.json"


def job_node_key(workspace_id: str, job_id: str, node_id: str) -> str:
    job = check_segment(job_id, "job id")
    node = check_segment(node_id, "node id")
    return f"{workspace_prefix(workspace_id)}jobs/{job}/{node}.json"


def belongs_to_workspace(key: str, workspace_id: str) -> bool:
    return key.startswith(workspace_prefix(workspace_id))


class ArtifactStore(ABC):
    """Bytes by key. Implementations must make ``put`` atomic: a reader sees all or nothing."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the bytes; raise ``ArtifactNotFound`` when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def put_json(self, key: str, obj: Mapping[str, Any]) -> None:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        self.put(key, data, "application/json")

    def get_json(self, key: str) -> dict[str, Any]:
        loaded = json.loads(self.get(key))
        if not isinstance(loaded, dict):
            raise ValueError(f"artifact {key!r} does not hold a JSON object")
        return loaded


class MemoryArtifactStore(ArtifactStore):
    """For tests and single-process runs; thread-safe because nodes may log from worker threads."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._lock:
            self._objects[check_key(key)] = (bytes(data), content_type)

    def get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[check_key(key)][0]
            except KeyError:
                raise ArtifactNotFound(key) from None

    def exists(self, key: str) -> bool:
        with self._lock:
            return check_key(key) in self._objects

    def content_type(self, key: str) -> str:
        with self._lock:
            try:
                return self._objects[check_key(key)][1]
            except KeyError:
                raise ArtifactNotFound(key) from None

    def list_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)


class FilesystemArtifactStore(ArtifactStore):
    """Files under ``root``; the embedded default and what a single GPU box uses.

    Writes go to a temporary file in the target folder and are renamed into place, so a worker killed
    mid-write never leaves a truncated checkpoint that a resumed run would trust.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def artifact_store_from_config(config: Mapping[str, Any]) -> ArtifactStore:
    """Build a store from the JSON-able ``storage`` part of a job payload.

    ``{"kind": "filesystem", "root": "/srv/kizy/media"}``, ``{"kind": "memory"}`` or
    ``{"kind": "s3", "bucket": ..., "endpoint_url": ..., ...}`` (what a Modal container uses).
    """
    kind = config.get("kind")
    if kind == "filesystem":
        root = config.get("root")
        if not isinstance(root, str) or not root:
            raise ValueError("filesystem storage needs a 'root' folder")
        return FilesystemArtifactStore(root)
    if kind == "memory":
        return MemoryArtifactStore()
    if kind == "s3":
        from gpu_workers.artifacts_s3 import S3ArtifactStore

        return S3ArtifactStore.from_config(config)
    raise ValueError(f"unknown storage kind {kind!r}; expected 'filesystem', 'memory' or 's3'")
