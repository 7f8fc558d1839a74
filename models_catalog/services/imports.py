"""A workspace imports a private LoRA: by CivitAI URL, by Hugging Face repo id, or by uploading the file.

Imported rows belong to the workspace (`workspace` set) and are visible to it alone. URL and repo
imports fetch metadata now and download in the background; an upload is checked and stored at once, in
the workspace's private artifact space, so only that workspace's jobs can load it (`artifact:` ref).
The user never supplies a URL we fetch: CivitAI ids are parsed out and asked of CIVITAI_API_BASE, repo
ids of HF_ENDPOINT.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from gpu_workers.artifacts import artifact_key

from ..clients.civitai import CivitaiClient, default_client
from ..clients.http import UpstreamError, UpstreamNotFound
from ..clients.huggingface import HuggingFaceClient, model_info_dict
from ..compat import detect_lora
from ..downloads import DownloadRefused, check_local_weights
from ..families import RUNNABLE_FAMILIES, Family, highest_rating, rating_allowed
from ..models import Download, LoraAdapter, ModelFile, Source, Status
from ..normalize import civitai as civitai_normalize
from ..normalize import huggingface as hf_normalize
from ..normalize.types import UpstreamItem, clean_tags
from .install import download_create
from .upsert import entry_link_same_file, entry_upsert

_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class ImportResult:
    lora: LoraAdapter
    download: Download | None
    created: bool


def parse_civitai_url(url: str) -> tuple[str | None, str | None]:
    """(model id, version id) from any CivitAI link people paste; raise ValidationError if none."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(
            {"civitai_url": "Paste a CivitAI link such as https://civitai.com/models/123?modelVersionId=456."}
        )
    version = (parse_qs(parts.query).get("modelVersionId") or [None])[0]
    path = parts.path
    if match := re.search(r"/api/download/models/(\d+)", path):
        return None, match.group(1)
    if match := re.search(r"/model-versions/(\d+)", path):
        return None, match.group(1)
    if match := re.search(r"/models/(\d+)", path):
        if version is not None and not str(version).isdigit():
            version = None
        return match.group(1), version
    raise ValidationError({"civitai_url": "That link names no CivitAI model or model version."})


def _import_item(item: UpstreamItem, *, workspace: Any, user: Any, field: str) -> ImportResult:
    if item.kind != "lora":
        raise ValidationError(
            {field: f"{item.name} is a base model, not a LoRA; only LoRAs can be imported."}
        )
    if not rating_allowed(item.nsfw_level, settings.KIZY_CATALOG_NSFW_MAX):
        raise ValidationError(
            {
                field: f"{item.name} is rated above this site's content limit "
                f"(level {highest_rating(item.nsfw_level)}); ask an operator."
            }
        )
    if not any(f.name.lower().endswith(".safetensors") for f in item.files):
        raise ValidationError(
            {
                field: f"{item.name} has no .safetensors file. Pickle formats (.ckpt, .pt, .bin) "
                "are refused because loading them can run arbitrary code."
            }
        )
    result = entry_upsert(item=item, workspace=workspace, created_by=user)
    lora = result.entry
    assert isinstance(lora, LoraAdapter)
    download = None
    if lora.status != Status.INSTALLED:
        download = download_create(entry=lora, workspace=workspace, user=user)
    return ImportResult(lora, download, result.outcome == "created")


def lora_import_from_civitai(
    *, workspace: Any, user: Any, url: str, client: CivitaiClient | None = None
) -> ImportResult:
    model_id, version_id = parse_civitai_url(url)
    client = client or default_client()
    try:
        if model_id is None:
            model_id = str(client.get_model_version(version_id)["modelId"])
        model = client.get_model(model_id)
    except UpstreamNotFound as exc:
        raise ValidationError(
            {"civitai_url": "CivitAI does not know that model (removed, or a typo?)."}
        ) from exc
    except UpstreamError as exc:
        raise ValidationError({"civitai_url": f"CivitAI could not be reached: {exc}"}) from exc
    items = civitai_normalize.model_items(
        model, api_base=client.base_url, nsfw_max=settings.KIZY_CATALOG_NSFW_MAX
    )
    if not items:
        raise ValidationError(
            {"civitai_url": f"CivitAI model {model_id} is a {model.get('type')}, not a LoRA."}
        )
    chosen = (
        next((i for i in items if i.external_version == str(version_id)), None) if version_id else items[0]
    )
    if chosen is None:
        raise ValidationError({"civitai_url": f"Model {model_id} has no version {version_id}."})
    return _import_item(chosen, workspace=workspace, user=user, field="civitai_url")


def lora_import_from_huggingface(
    *, workspace: Any, user: Any, repo_id: str, client: HuggingFaceClient | None = None
) -> ImportResult:
    repo_id = repo_id.strip().strip("/")
    if not _HF_REPO.match(repo_id):
        raise ValidationError(
            {"huggingface_repo": "Give the repository as owner/name, e.g. someone/my-style-lora."}
        )
    client = client or HuggingFaceClient()
    try:
        info = model_info_dict(client.model_info(repo_id))
    except UpstreamNotFound as exc:
        raise ValidationError({"huggingface_repo": f"{repo_id} was not found (or is private)."}) from exc
    except UpstreamError as exc:
        raise ValidationError({"huggingface_repo": f"Hugging Face could not be reached: {exc}"}) from exc
    item = hf_normalize.repo_item(info, endpoint=client.endpoint)
    if item is None:
        raise ValidationError({"huggingface_repo": f"{repo_id} is neither a LoRA nor a diffusers model."})
    return _import_item(item, workspace=workspace, user=user, field="huggingface_repo")


def _spool(upload: Any, limit: int) -> tuple[Path, str, int]:
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False)  # noqa: SIM115 - returned path
    with handle:
        for chunk in upload.chunks():
            size += len(chunk)
            if size > limit:
                Path(handle.name).unlink(missing_ok=True)
                raise ValidationError(
                    {"file": f"The file is over this site's upload limit of {limit:,} bytes."}
                )
            digest.update(chunk)
            handle.write(chunk)
    return Path(handle.name), digest.hexdigest(), size


@transaction.atomic
def lora_import_upload(
    *,
    workspace: Any,
    user: Any,
    upload: Any,
    name: str = "",
    family: str = "",
    trigger_words: list[str] | None = None,
    tags: list[str] | None = None,
) -> ImportResult:
    filename = Path(getattr(upload, "name", "") or "upload.safetensors").name
    try:
        from ..downloads import refuse_unsafe_name

        refuse_unsafe_name(filename)
        if not filename.lower().endswith(".safetensors"):
            raise DownloadRefused(f"{filename}: upload a .safetensors LoRA file")
    except DownloadRefused as exc:
        raise ValidationError({"file": str(exc)}) from exc
    path, sha256, size = _spool(upload, settings.KIZY_CATALOG_MAX_UPLOAD_BYTES)
    try:
        try:
            check_local_weights(path)
            lora_format, detected = detect_lora(path)
        except DownloadRefused as exc:
            raise ValidationError({"file": str(exc).replace(path.name, filename)}) from exc
        if not lora_format:
            raise ValidationError(
                {"file": f"{filename} holds no LoRA weights (no lora_up/lora_down or lora_A/lora_B keys)."}
            )
        if family and family not in RUNNABLE_FAMILIES:
            raise ValidationError({"family": f"Choose a family from {', '.join(sorted(RUNNABLE_FAMILIES))}."})
        existing = LoraAdapter.objects.filter(
            workspace=workspace, source=Source.UPLOAD, external_id=sha256
        ).first()
        if existing is not None:
            return ImportResult(existing, None, False)
        key = artifact_key(str(workspace.pk), sha256, "safetensors")
        if not default_storage.exists(key):
            with path.open("rb") as handle:
                saved = default_storage.save(key, File(handle))
            if saved != key:
                default_storage.delete(saved)
                raise ValidationError(
                    {"file": "Could not store the file under its content address; try again."}
                )
    finally:
        path.unlink(missing_ok=True)
    chosen_family = family or detected or Family.UNKNOWN
    lora = LoraAdapter.objects.create(
        workspace=workspace,
        created_by=user,
        name=(name or Path(filename).stem)[:200],
        source=Source.UPLOAD,
        external_id=sha256,
        revision=sha256,
        family=chosen_family,
        family_flagged=chosen_family not in RUNNABLE_FAMILIES,
        detected_family=detected,
        lora_format=lora_format,
        sha256=sha256,
        size_bytes=size,
        trigger_words=[w.strip() for w in trigger_words or [] if w.strip()],
        status=Status.INSTALLED,
        store_ref=f"artifact:{key}",
        license="",
        recommended_weight=0.8,
        status_message=""
        if not family or not detected or family == detected
        else f"You said {Family(family).label}, but the weights look like {Family(detected).label}.",
    )
    ModelFile.objects.create(
        lora=lora,
        name=filename,
        size_bytes=size,
        sha256=sha256,
        is_primary=True,
        local_path="",
        installed_at=lora.created_at,
    )
    from ..models import Tag

    lora.tags.set([Tag.objects.get_or_create(name=t)[0] for t in clean_tags(tags)])
    entry_link_same_file(lora)
    return ImportResult(lora, None, True)
