"""Where model weights live on a worker, and how a reference string becomes a checked local path.

References (the strings in ``ModelSpec.ref`` / ``LoraSpec.ref``):

- ``hf:<owner>/<repo>[@rev]``                 a diffusers folder from Hugging Face (``HF_ENDPOINT``
                                             honoured); ``hf:<owner>/<repo>/<file>.safetensors[@rev]``
                                             for a single file such as a LoRA.
- ``civitai:<model version id>``              a file the catalog already installed under
                                             ``<root>/civitai/<id>/``; workers never download from CivitAI.
- ``local:<name>``                            ``<root>/local/<name>`` (a folder) or ``<name>.safetensors``.
- ``artifact:<key>``                          a workspace artifact (e.g. a LoRA trained here), copied
                                             from the workspace's artifact store; only that workspace's
                                             keys are accepted.

Every path handed out has passed the safety checks: pickle formats (``.ckpt/.pt/.bin/.pth``) are
refused because unpickling runs arbitrary code, and every safetensors header is validated before a
loader sees it (``safetensors_check``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from gpu_workers.models.errors import (
    ModelNotInstalledError,
    ModelRefError,
    ModelStoreUnreachable,
    UnsafeModelFileError,
)
from gpu_workers.models.safetensors_check import read_safetensors_header

Scheme = Literal["hf", "civitai", "local", "artifact"]
SCHEMES: tuple[Scheme, ...] = ("hf", "civitai", "local", "artifact")
PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"})
_WEIGHT_SUFFIXES = PICKLE_SUFFIXES | {".safetensors"}
_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SAFE_SEGMENT = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._ +-]{1,200}$")
_HF_VARIANTS = re.compile(r"\.(fp16|bf16|fp32|non_ema|ema)\.safetensors$")


@dataclass(frozen=True)
class ParsedRef:
    scheme: Scheme
    name: str
    revision: str | None = None
    filename: str | None = None

    def __str__(self) -> str:
        rest = f"/{self.filename}" if self.filename else ""
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.scheme}:{self.name}{rest}{rev}"


def parse_ref(ref: str) -> ParsedRef:
    """Split and validate a reference; raise ``ModelRefError`` with the accepted forms if it is bad."""
    scheme, sep, rest = ref.partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        raise ModelRefError(
            f"model reference {ref!r} is not valid; use hf:<owner>/<repo>[@rev], civitai:<version id>, "
            "local:<name> or artifact:<key>"
        )
    if scheme == "hf":
        path, _, revision = rest.partition("@")
        parts = path.split("/")
        repo = "/".join(parts[:2])
        filename = "/".join(parts[2:]) or None
        if not _HF_REPO.match(repo) or (filename is not None and not _safe_relative(filename)):
            raise ModelRefError(f"{ref!r}: expected hf:<owner>/<repo>[/<file>][@revision]")
        return ParsedRef("hf", repo, revision or None, filename)
    if scheme == "civitai":
        if not rest.isdigit():
            raise ModelRefError(f"{ref!r}: a CivitAI reference is the numeric model version id")
        return ParsedRef("civitai", rest)
    if scheme == "local":
        if not _safe_relative(rest):
            raise ModelRefError(f"{ref!r}: local names are relative paths without '..'")
        return ParsedRef("local", rest)
    return ParsedRef("artifact", rest)


def _safe_relative(path: str) -> bool:
    return not path.startswith("/") and all(_SAFE_SEGMENT.match(part) for part in path.split("/"))


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeModelFileError(
            f"{path.name} is refused: it is a pickle-based {path.suffix} file, and loading pickle can run "
            "arbitrary code. Kizy only loads .safetensors weights; use a safetensors version of this model."
        )


class ArtifactSource(Protocol):
    """The part of ``gpu_workers.artifacts.ArtifactStore`` the store needs."""

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


def choose_hf_files(files: Iterable[str]) -> list[str]:
    """Which files of a Hugging Face repo to download: safetensors weights and their configs only.

    A diffusers repo (``model_index.json``) often also holds pickle weights, ONNX exports, fp16
    variants and a multi-GB single-file checkpoint at its root; we take the component folders'
    configs and plain safetensors (a variant only where no plain file exists). A repo without
    ``model_index.json`` (e.g. a LoRA) gets its safetensors and JSON files.
    """
    names = list(files)
    if "model_index.json" not in names:
        return [n for n in names if n.endswith((".safetensors", ".json"))]
    chosen = ["model_index.json"]
    folders: dict[str, list[str]] = {}
    for name in names:
        folder, sep, base = name.rpartition("/")
        if sep and "/" not in folder:
            folders.setdefault(folder, []).append(base)
    for folder, bases in folders.items():
        plain = [b for b in bases if b.endswith(".safetensors") and not _HF_VARIANTS.search(b)]
        weights = plain or [b for b in bases if b.endswith(".safetensors")]
        other = [b for b in bases if b.endswith((".json", ".txt", ".model"))]
        chosen += [f"{folder}/{b}" for b in (*weights, *other)]
    return chosen


_NETWORK_ERROR_NAMES = ("ConnectionError", "ConnectError", "Timeout", "TimeoutException", "NetworkError",
                        "ProtocolError", "RemoteProtocolError", "ReadError", "WriteError")


def is_network_error(exc: BaseException) -> bool:
    """A failure to reach the server (retry later), as opposed to an answer that the file is missing or
    private. Looks through the exception's causes: huggingface_hub wraps the HTTP client's errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if any(klass.__name__ in _NETWORK_ERROR_NAMES for klass in type(current).__mro__):
            return True
        response = getattr(current, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        current = current.__cause__ or current.__context__
    return False


class ModelStore:
    """Resolves references to checked local paths under ``root``.

    Layout: ``root/hf`` (huggingface_hub cache), ``root/civitai/<version id>/`` (installed by the
    catalog), ``root/local/`` (operator-provided, and where the tiny demo models go),
    ``root/artifacts/`` (copies of workspace artifacts, named by the key's content hash).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, hf_endpoint: str | None = None, allow_downloads: bool = True
    ) -> None:
        self.root = Path(root)
        self.hf_endpoint = hf_endpoint or os.environ.get("HF_ENDPOINT") or None
        self.allow_downloads = allow_downloads
        self._checked: dict[tuple[str, int, int], None] = {}
        self._digests: dict[str, str] = {}
        self._hf_resolved: dict[str, Path] = {}
        self._lock = threading.Lock()

    # -- paths -----------------------------------------------------------------------------------

    def civitai_dir(self, version_id: int | str) -> Path:
        """Where the catalog installs a CivitAI model version (one .safetensors file inside)."""
        if not str(version_id).isdigit():
            raise ModelRefError(f"CivitAI version id {version_id!r} must be numeric")
        return self.root / "civitai" / str(version_id)

    def local_dir(self) -> Path:
        return self.root / "local"

    # -- resolution ------------------------------------------------------------------------------

    def resolve(
        self, ref: str, *, artifacts: ArtifactSource | None = None, workspace_id: str | None = None
    ) -> Path:
        """A checked local folder or ``.safetensors`` file for ``ref``.

        ``artifact:`` references need the job's ``artifacts`` and ``workspace_id``: a key outside that
        workspace's prefix is refused before the store is asked, so one tenant cannot load another's
        LoRA even if it guesses the key.
        """
        parsed = parse_ref(ref)
        if parsed.scheme == "hf":
            path = self._resolve_hf(parsed)
        elif parsed.scheme == "civitai":
            path = self._resolve_civitai(parsed)
        elif parsed.scheme == "local":
            path = self._resolve_local(parsed)
        else:
            path = self._resolve_artifact(parsed, artifacts, workspace_id)
        self.check(path)
        return path

    def _resolve_local(self, parsed: ParsedRef) -> Path:
        base = self.local_dir()
        for candidate in (base / parsed.name, base / f"{parsed.name}.safetensors"):
            if candidate.exists():
                if not candidate.resolve().is_relative_to(base.resolve()):
                    raise ModelRefError(f"local:{parsed.name} points outside the local model folder")
                return candidate
        for suffix in PICKLE_SUFFIXES:
            if (base / f"{parsed.name}{suffix}").exists():
                refuse_pickle(base / f"{parsed.name}{suffix}")
        bundled = _bundled_upscaler(parsed.name, base)
        if bundled is not None:
            return bundled
        raise ModelNotInstalledError(
            f"local:{parsed.name} is not installed on this worker (looked in {base})"
        )

    def _resolve_civitai(self, parsed: ParsedRef) -> Path:
        folder = self.civitai_dir(parsed.name)
        files = (
            sorted(p for p in folder.glob("*") if p.suffix.lower() in _WEIGHT_SUFFIXES)
            if folder.is_dir()
            else []
        )
        safe = [p for p in files if p.suffix == ".safetensors"]
        if not safe:
            if files:
                refuse_pickle(files[0])
            raise ModelNotInstalledError(
                f"civitai:{parsed.name} is not installed on this worker; install it from the model catalog "
                f"first (workers never download from CivitAI; expected a .safetensors file in {folder})"
            )
        if len(safe) > 1:
            raise ModelRefError(f"civitai:{parsed.name} has several .safetensors files in {folder}; keep one")
        return safe[0]

    def _resolve_hf(self, parsed: ParsedRef) -> Path:
        key = str(parsed)
        with self._lock:
            if key in self._hf_resolved:
                return self._hf_resolved[key]
        try:
            path = self._hf_fetch(parsed, local_only=True)
        except Exception:  # noqa: BLE001 - any cache miss means "try the network"
            if not self.allow_downloads:
                raise ModelNotInstalledError(
                    f"{key} is not in this worker's Hugging Face cache and downloads are disabled"
                ) from None
            try:
                path = self._hf_fetch(parsed, local_only=False)
            except UnsafeModelFileError:
                raise
            except Exception as exc:  # noqa: BLE001 - network, auth and HTTP errors all mean "not available"
                endpoint = self.hf_endpoint or "https://huggingface.co"
                error = ModelStoreUnreachable if is_network_error(exc) else ModelNotInstalledError
                raise error(
                    f"could not fetch {key} from {endpoint} ({type(exc).__name__}: {exc}); the worker may be "
                    "offline or the repository private or missing. Pre-download it into the worker's model "
                    "store, or set HF_ENDPOINT / HF_TOKEN."
                ) from exc
        with self._lock:
            self._hf_resolved[key] = path
        return path

    def _hf_fetch(self, parsed: ParsedRef, *, local_only: bool) -> Path:
        import huggingface_hub

        cache_dir = self.root / "hf"
        if parsed.filename is not None:
            refuse_pickle(Path(parsed.filename))
            return Path(
                huggingface_hub.hf_hub_download(
                    parsed.name,
                    parsed.filename,
                    revision=parsed.revision,
                    cache_dir=cache_dir,
                    local_files_only=local_only,
                    endpoint=self.hf_endpoint,
                )
            )
        allow: list[str] | None = None
        if not local_only:
            api = huggingface_hub.HfApi(endpoint=self.hf_endpoint)
            # model_info (one request) rather than list_repo_files, which retries a dead endpoint
            # with backoff for ~25 s before giving up.
            info = api.model_info(parsed.name, revision=parsed.revision)
            allow = choose_hf_files(sibling.rfilename for sibling in info.siblings or [])
            if not any(name.endswith(".safetensors") for name in allow):
                raise UnsafeModelFileError(
                    f"hf:{parsed.name} has no .safetensors weights; Kizy does not load pickle checkpoints"
                )
        folder = Path(
            huggingface_hub.snapshot_download(
                parsed.name,
                revision=parsed.revision,
                cache_dir=cache_dir,
                local_files_only=local_only,
                allow_patterns=allow,
                endpoint=self.hf_endpoint,
            )
        )
        if not any(folder.rglob("*.safetensors")):
            raise ModelNotInstalledError(
                f"hf:{parsed.name}: the cached snapshot holds no safetensors weights"
            )
        return folder

    def _resolve_artifact(
        self, parsed: ParsedRef, artifacts: ArtifactSource | None, workspace_id: str | None
    ) -> Path:
        from gpu_workers.artifacts import belongs_to_workspace, check_key

        key = parsed.name
        if artifacts is None or workspace_id is None:
            raise ModelRefError(f"artifact:{key} can only be loaded inside a job of its workspace")
        check_key(key)
        if not belongs_to_workspace(key, workspace_id) or not artifacts.exists(key):
            # Same message whether it exists elsewhere or not at all: no probing other workspaces.
            raise ModelNotInstalledError(f"artifact:{key} was not found in this workspace")
        refuse_pickle(Path(key))
        target = self.root / "artifacts" / f"{hashlib.sha256(key.encode()).hexdigest()}.safetensors"
        if not target.is_file():
            data = artifacts.get(key)
            expected = re.search(r"([0-9a-f]{64})\.[a-z0-9]+$", key)
            if expected and hashlib.sha256(data).hexdigest() != expected.group(1):
                raise UnsafeModelFileError(f"artifact:{key} does not match the SHA-256 in its key")
            _atomic_write(target, data)
        return target

    # -- checks and hashes -----------------------------------------------------------------------

    def check(self, path: Path) -> None:
        """Refuse pickle weights and malformed safetensors; results are memoised per file version."""
        if path.is_file():
            refuse_pickle(path)
            if path.suffix != ".safetensors":
                raise UnsafeModelFileError(
                    f"{path.name} is refused: only .safetensors weight files are loaded"
                )
            self._check_file(path)
            return
        if not path.is_dir():
            raise ModelNotInstalledError(f"{path} does not exist")
        for folder, _dirs, files in os.walk(path):
            weights = [Path(folder, f) for f in files if Path(f).suffix.lower() in _WEIGHT_SUFFIXES]
            safe = [w for w in weights if w.suffix == ".safetensors"]
            pickles = [w for w in weights if w.suffix != ".safetensors"]
            if pickles and not safe:
                refuse_pickle(pickles[0])
            for weight in safe:
                self._check_file(weight)

    def _check_file(self, path: Path) -> None:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in self._checked:
            return
        read_safetensors_header(path)
        self._checked[key] = None

    def sha256(self, path: Path) -> str:
        """SHA-256 of a file, or of a folder's listing of (relative path, file SHA-256) lines.

        The reproducibility record asks for this on every job, and hashing a 7 GB checkpoint takes tens
        of seconds, so digests are remembered per (path, size, mtime) in memory and in
        ``<root>/.digests.json`` across worker restarts. Hugging Face cache blobs are already named by
        their SHA-256 and are never re-read.
        """
        if path.is_dir():
            lines = [
                f"{p.relative_to(path).as_posix()} {self.sha256(p)}\n"
                for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            ]
            return hashlib.sha256("".join(lines).encode()).hexdigest()
        resolved = path.resolve()
        if re.fullmatch(r"[0-9a-f]{64}", resolved.name) and resolved.parent.name == "blobs":
            return resolved.name
        stat = resolved.stat()
        key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
        with self._lock:
            if not self._digests:
                self._digests.update(self._read_digest_file())
            known = self._digests.get(key)
        if known:
            return known
        digest = hashlib.sha256()
        with resolved.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        with self._lock:
            self._digests[key] = digest.hexdigest()
            self._write_digest_file()
        return self._digests[key]

    def _digest_file(self) -> Path:
        return self.root / ".digests.json"

    def _read_digest_file(self) -> dict[str, str]:
        try:
            loaded = json.loads(self._digest_file().read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}

    def _write_digest_file(self) -> None:
        try:
            merged = {**self._read_digest_file(), **self._digests}
            _atomic_write(self._digest_file(), json.dumps(merged, sort_keys=True).encode())
        except OSError:
            pass  # a read-only store (e.g. a mounted volume) still works, it just re-hashes next time


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _bundled_upscaler(name: str, local_dir: Path) -> Path | None:
    """The Real-ESRGAN weights shipped with the worker's Python packages, converted on first use, so the
    upscale node works on a fresh install with nothing downloaded (see ``realesrgan_ncnn``)."""
    from gpu_workers.models import realesrgan_ncnn

    if name not in realesrgan_ncnn.PACKAGED.values():
        return None
    try:
        return realesrgan_ncnn.write_packaged(local_dir, (name,))[name]
    except realesrgan_ncnn.NcnnFormatError:  # the weights package is not installed
        return None


def single_weights_file(path: Path) -> Path:
    """The one ``.safetensors`` file of a LoRA/upscaler reference that resolved to a folder."""
    if path.is_file():
        return path
    files = sorted(path.glob("*.safetensors"))
    if len(files) != 1:
        raise ModelRefError(f"{path.name} holds {len(files)} .safetensors files; expected exactly one")
    return files[0]
