"""Install a catalog entry's files into the model store (settings.KIZY_MODEL_STORE), with progress.

Layout follows `gpu_workers.models.store.ModelStore`, so workers resolve what we install:
- CivitAI: `<store>/civitai/<version id>/<file>.safetensors`, reference `civitai:<version id>`;
- Hugging Face: the hub cache layout under `<store>/hf` (blobs named by hash, a snapshot per commit),
  reference `hf:<repo>@<commit>` (a pipeline) or `hf:<repo>/<file>@<commit>` (a LoRA), which the
  store resolves offline.
A file whose SHA-256 matches one already installed is linked, not downloaded again.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gpu_workers.models.errors import ModelError

from ..compat import detect_lora
from ..downloads import DownloadRefused, DownloadSpec, download_file
from ..families import RUNNABLE_FAMILIES, Family
from ..models import BaseModel, CatalogEntry, Download, LoraAdapter, ModelFile, Source, Status

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 1.0


def store_root() -> Path:
    return Path(settings.KIZY_MODEL_STORE)


def _hf_repo_dir(repo_id: str) -> Path:
    return store_root() / "hf" / ("models--" + repo_id.replace("/", "--"))


@transaction.atomic
def download_create(*, entry: CatalogEntry, workspace: Any = None, user: Any = None) -> Download:
    """Queue an install (the task starts once this transaction commits). Idempotent while one is running."""
    owner = {"lora": entry} if isinstance(entry, LoraAdapter) else {"base_model": entry}
    running = Download.objects.filter(
        **owner, state__in=[Download.State.QUEUED, Download.State.DOWNLOADING, Download.State.VERIFYING]
    ).first()
    if running is not None:
        return running
    if entry.source in (Source.LOCAL, Source.UPLOAD, Source.TRAINED):
        raise DownloadRefused(f"{entry} is not downloaded from anywhere: its files are already on this site")
    download = Download.objects.create(
        **owner, workspace=workspace, requested_by=user, bytes_total=entry.size_bytes
    )
    type(entry).objects.filter(pk=entry.pk).update(status=Status.INSTALLING, status_message="")
    from ..tasks import download_run_task

    transaction.on_commit(lambda: download_run_task.delay(str(download.id)))
    return download


@transaction.atomic
def entry_install(*, entry: CatalogEntry, workspace: Any, user: Any = None) -> tuple[Download | None, bool]:
    """An artist asks for a catalog entry they can see (access.py decided that) to be installed.

    Returns (download, queued): the running or new install, or the last one when it is already
    installed (queued is False then). Refusals say what to do instead.
    """
    if entry.status == Status.INSTALLED:
        return entry.downloads.order_by("-created_at").first(), False
    if entry.status == Status.WITHDRAWN:
        raise DownloadRefused(f"{entry} was withdrawn upstream, so it can no longer be downloaded")
    if entry.source in (Source.LOCAL, Source.UPLOAD, Source.TRAINED):
        raise DownloadRefused(
            f"{entry} has no download source: its files live on this site; ask a curator to check it"
        )
    return download_create(entry=entry, workspace=workspace, user=user), True


def _http_client() -> httpx.Client:
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(60.0, connect=15.0),
        headers={"User-Agent": "Kizy-catalog/1.0"},
    )


def _auth_headers(entry: CatalogEntry) -> dict[str, str]:
    # httpx drops Authorization when a redirect leaves the origin (CivitAI redirects to storage).
    if entry.source == Source.CIVITAI and settings.CIVITAI_TOKEN:
        return {"Authorization": f"Bearer {settings.CIVITAI_TOKEN}"}
    if entry.source == Source.HUGGINGFACE and settings.HF_TOKEN:
        return {"Authorization": f"Bearer {settings.HF_TOKEN}"}
    return {}


def _files_to_install(entry: CatalogEntry) -> list[ModelFile]:
    files = list(entry.files.all())
    if entry.source == Source.CIVITAI or isinstance(entry, LoraAdapter):
        primary = [f for f in files if f.is_primary] or files[:1]
        return primary
    return files


def _destination(entry: CatalogEntry, file: ModelFile) -> Path:
    if entry.source == Source.CIVITAI:
        return store_root() / "civitai" / entry.external_version / Path(file.name).name
    blob = file.sha256 or file.git_blob_id
    if not blob:
        raise DownloadRefused(f"{file.name}: the source publishes no hash for it, so it cannot be verified")
    return _hf_repo_dir(entry.external_id) / "blobs" / blob


def _reuse_installed_copy(file: ModelFile, dest: Path) -> bool:
    """Link (or copy) an already-installed file with the same SHA-256 instead of downloading it again."""
    if not file.sha256 or dest.exists():
        return dest.exists()
    twin = (
        ModelFile.objects.filter(sha256=file.sha256, installed_at__isnull=False)
        .exclude(pk=file.pk)
        .exclude(local_path="")
        .first()
    )
    if twin is None or not Path(twin.local_path).is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(twin.local_path, dest)
    except OSError:
        shutil.copyfile(twin.local_path, dest)
    return True


def _hf_snapshot_link(entry: CatalogEntry, file: ModelFile, blob: Path) -> Path:
    repo_dir = _hf_repo_dir(entry.external_id)
    link = repo_dir / "snapshots" / entry.revision / file.name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(entry.revision)
    return link


def _store_ref(entry: CatalogEntry, primary: ModelFile | None) -> str:
    if entry.source == Source.CIVITAI:
        return f"civitai:{entry.external_version}"
    if isinstance(entry, LoraAdapter) and primary is not None:
        return f"hf:{entry.external_id}/{primary.name}@{entry.revision}"
    return f"hf:{entry.external_id}@{entry.revision}"


class _ProgressWriter:
    def __init__(self, download: Download, offset: int) -> None:
        self.download, self.offset, self.last = download, offset, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        Download.objects.filter(pk=self.download.pk).update(bytes_done=self.offset + done)


def _inspect_lora(lora: LoraAdapter, path: Path) -> None:
    """Label the LoRA from its own weights, and flag a family that disagrees with the source's label."""
    lora_format, detected = detect_lora(path)
    if not lora_format:
        raise DownloadRefused(
            f"{path.name} holds no LoRA weights (no lora_up/lora_down or lora_A/lora_B keys)"
        )
    lora.lora_format, lora.detected_family = lora_format, detected
    if lora.family not in RUNNABLE_FAMILIES and detected in RUNNABLE_FAMILIES:
        lora.family, lora.family_flagged = detected, False
    elif detected in RUNNABLE_FAMILIES and detected != lora.family:
        lora.family_flagged = True
        lora.status_message = (
            f"The source says {Family(lora.family).label} but the weights look like "
            f"{Family(detected).label}; "
            "check the family before approving."
        )


def download_run(*, download_id: str) -> Download:
    """Do the install (called by the Celery task). Failures end in state `failed` with the reason."""
    download = Download.objects.select_related("base_model", "lora").get(pk=download_id)
    if download.state == Download.State.INSTALLED:
        return download
    entry = download.entry
    Download.objects.filter(pk=download.pk).update(
        state=Download.State.DOWNLOADING, started_at=timezone.now()
    )
    try:
        with _http_client() as client:
            paths = _install_files(entry, download, client)
    except (DownloadRefused, ModelError, httpx.HTTPError, OSError) as exc:
        message = str(exc) if isinstance(exc, DownloadRefused | ModelError) else f"download failed: {exc}"
        _finish(download, entry, ok=False, message=message)
        if isinstance(exc, httpx.TransportError):
            raise  # transient: the task retries, and the partial file resumes
        return Download.objects.get(pk=download.pk)
    primary = next((f for f in _files_to_install(entry) if f.is_primary), None) or _files_to_install(entry)[0]
    if isinstance(entry, LoraAdapter):
        try:
            _inspect_lora(entry, paths[primary.name])
        except (DownloadRefused, ModelError) as exc:
            _finish(download, entry, ok=False, message=str(exc))
            return Download.objects.get(pk=download.pk)
    entry.store_ref = _store_ref(entry, primary)
    _finish(download, entry, ok=True, message="")
    return Download.objects.get(pk=download.pk)


def _install_files(entry: CatalogEntry, download: Download, client: httpx.Client) -> dict[str, Path]:
    files = _files_to_install(entry)
    if not files:
        raise DownloadRefused(f"{entry} has no files to install")
    if not any(f.name.lower().endswith(".safetensors") for f in files):
        names = ", ".join(f.name for f in files)
        raise DownloadRefused(
            f"{entry} publishes only {names}; these are pickle or unknown formats, which can run arbitrary "
            "code "
            "when loaded. Kizy only installs .safetensors weights."
        )
    total = sum(f.size_bytes or 0 for f in files) or None
    Download.objects.filter(pk=download.pk).update(bytes_total=total)
    paths: dict[str, Path] = {}
    offset = 0
    for file in files:
        if entry.source == Source.CIVITAI and not file.sha256 and not entry.allow_unverified:
            raise DownloadRefused(
                f"{file.name}: CivitAI publishes no SHA-256 for this file, so its bytes cannot be verified; "
                "it was not installed. A curator can allow an unverified install for this entry in the admin."
            )
        dest = _destination(entry, file)
        if not _reuse_installed_copy(file, dest):
            spec = DownloadSpec(
                url=file.download_url,
                dest=dest,
                expected_sha256=file.sha256,
                expected_git_sha1=file.git_blob_id,
                expected_size=file.size_bytes,
                max_bytes=settings.KIZY_CATALOG_MAX_DOWNLOAD_BYTES,
                headers=_auth_headers(entry),
                name=Path(file.name).name,
            )
            download_file(spec, client=client, progress=_ProgressWriter(download, offset))
        path = _hf_snapshot_link(entry, file, dest) if entry.source == Source.HUGGINGFACE else dest
        ModelFile.objects.filter(pk=file.pk).update(local_path=str(dest), installed_at=timezone.now())
        paths[file.name] = path
        offset += file.size_bytes or dest.stat().st_size
        Download.objects.filter(pk=download.pk).update(bytes_done=offset)
    return paths


def _finish(download: Download, entry: CatalogEntry, *, ok: bool, message: str) -> None:
    now = timezone.now()
    Download.objects.filter(pk=download.pk).update(
        state=Download.State.INSTALLED if ok else Download.State.FAILED, message=message, finished_at=now
    )
    entry.status = Status.INSTALLED if ok else Status.FAILED
    if not ok:
        entry.status_message = message
    elif entry.status_message.startswith(("download failed", "The source published")):
        entry.status_message = ""
    fields = ["status", "status_message", "store_ref", "updated_at"]
    if isinstance(entry, LoraAdapter):
        fields += ["lora_format", "detected_family", "family", "family_flagged"]
    entry.save(update_fields=fields)
    if not ok:
        logger.info("install of %s failed: %s", entry, message)


def base_model_local_dir(model: BaseModel) -> Path | None:
    """The installed folder of a base model on this machine, for shape checks; None if not here."""
    from gpu_workers.models.store import ModelStore

    ref = model.store_ref
    if not ref or model.status not in (Status.INSTALLED, Status.WITHDRAWN):
        return None
    try:
        path = ModelStore(store_root(), allow_downloads=False).resolve(ref)
    except (ModelError, OSError):
        return None
    return path if path.is_dir() else None


def lora_local_file(lora: LoraAdapter) -> Path | None:
    from gpu_workers.models.store import ModelStore, single_weights_file

    ref = lora.store_ref
    if not ref or ref.startswith("artifact:") or lora.status not in (Status.INSTALLED, Status.WITHDRAWN):
        return _uploaded_file(lora)
    try:
        return single_weights_file(ModelStore(store_root(), allow_downloads=False).resolve(ref))
    except (ModelError, OSError):
        return None


def _uploaded_file(lora: LoraAdapter) -> Path | None:
    if not lora.store_ref.startswith("artifact:"):
        return None
    from django.core.files.storage import default_storage

    try:
        return Path(default_storage.path(lora.store_ref.removeprefix("artifact:")))
    except (NotImplementedError, ValueError):
        return None  # object storage: no local path to inspect
