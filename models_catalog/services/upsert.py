"""Idempotent writes of upstream items: keyed by (source, external id, version), cross-linked by SHA-256.

Running the same sync twice writes nothing the second time: each row keeps a fingerprint of what the
source said, and an unchanged fingerprint means the row is left alone. Curators' decisions (approved,
featured, hidden, intents) are never overwritten by a sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..families import RUNNABLE_FAMILIES
from ..models import BaseModel, CatalogEntry, LoraAdapter, ModelFile, Status, Tag
from ..normalize.types import UpstreamItem

Outcome = Literal["created", "updated", "unchanged"]

_ENTRY_FIELDS = (
    "name",
    "version_name",
    "description",
    "family",
    "upstream_base_model",
    "family_flagged",
    "revision",
    "source_url",
    "creator_name",
    "license",
    "commercial_use",
    "commercial_use_allowed",
    "allow_no_credit",
    "allow_derivatives",
    "allow_different_license",
    "nsfw_level",
    "preview_images",
    "default_settings",
    "download_count",
    "likes",
)


@dataclass(frozen=True)
class UpsertResult:
    entry: CatalogEntry
    outcome: Outcome


def entry_model(kind: str) -> type[BaseModel] | type[LoraAdapter]:
    return LoraAdapter if kind == "lora" else BaseModel


def _family_from_catalog(item: UpstreamItem) -> None:
    """A LoRA built on a fine-tune we already know inherits that fine-tune's family."""
    if item.family in RUNNABLE_FAMILIES or not item.upstream_base_model:
        return
    base = (
        BaseModel.objects.filter(external_id=item.upstream_base_model, family__in=RUNNABLE_FAMILIES)
        .values_list("family", flat=True)
        .first()
    )
    if base:
        item.family, item.family_flagged = base, False
        item.notes = [n for n in item.notes if "is not a family" not in n]


def _sync_files(entry: CatalogEntry, item: UpstreamItem) -> None:
    owner = {"lora": entry} if isinstance(entry, LoraAdapter) else {"base_model": entry}
    existing = {f.name: f for f in ModelFile.objects.filter(**owner)}
    for upstream in item.files:
        row = existing.pop(upstream.name, None) or ModelFile(name=upstream.name, **owner)
        if row.pk and row.sha256 and row.sha256 != upstream.sha256:
            row.local_path, row.installed_at = "", None  # different bytes upstream: the local copy is stale
        row.size_bytes = upstream.size_bytes
        row.sha256 = upstream.sha256
        row.git_blob_id = upstream.git_sha1
        row.download_url = upstream.download_url
        row.kind = upstream.kind
        row.is_primary = upstream.is_primary
        row.save()
    for stale in existing.values():
        stale.delete()


def _set_tags(entry: CatalogEntry, names: list[str]) -> None:
    tags = [Tag.objects.get_or_create(name=name)[0] for name in names]
    entry.tags.set(tags)


def entry_link_same_file(entry: CatalogEntry) -> None:
    """Cross-link by SHA-256: point at the oldest entry with the same primary file that the entry's own
    scope can see (public rows for a public entry; public rows plus its own workspace's for a private
    one), so a link never names another workspace's private entry (T3)."""
    if not entry.sha256:
        return
    scope = Q(workspace__isnull=True)
    if entry.workspace_id is not None:
        scope |= Q(workspace_id=entry.workspace_id)
    first = type(entry).objects.filter(scope, sha256=entry.sha256).exclude(pk=entry.pk).order_by("created_at").first()
    target = first.pk if first is not None else None  # the oldest in scope is the root of its chain
    if entry.same_as_id != target:
        type(entry).objects.filter(pk=entry.pk).update(same_as_id=target)
        entry.same_as_id = target


@transaction.atomic
def entry_upsert(*, item: UpstreamItem, workspace: Any = None, created_by: Any = None) -> UpsertResult:
    """Create or update the row for `item` (public when `workspace` is None, else that workspace's)."""
    _family_from_catalog(item)
    model = entry_model(item.kind)
    fingerprint = item.fingerprint()
    entry = (
        model.objects.select_for_update()
        .filter(
            source=item.source,
            external_id=item.external_id,
            external_version=item.external_version,
            workspace=workspace,
        )
        .first()
    )
    if entry is not None and entry.upstream_fingerprint == fingerprint and entry.status != Status.WITHDRAWN:
        return UpsertResult(entry, "unchanged")
    created = entry is None
    if entry is None:
        entry = model(
            source=item.source,
            external_id=item.external_id,
            external_version=item.external_version,
            workspace=workspace,
            created_by=created_by,
        )
    for field in _ENTRY_FIELDS:
        setattr(entry, field, getattr(item, field))
    primary = item.primary_file
    new_sha = primary.sha256 if primary else ""
    if not created and entry.sha256 and new_sha and entry.sha256 != new_sha and entry.status == Status.INSTALLED:
        entry.status, entry.store_ref = Status.AVAILABLE, ""
        entry.status_message = "The source published different weights for this version; install again."
    if entry.status == Status.WITHDRAWN:
        entry.status, entry.withdrawn_at = (Status.INSTALLED if entry.store_ref else Status.AVAILABLE), None
        entry.status_message = "Available upstream again."
    if item.notes and entry.status != Status.INSTALLED:
        entry.status_message = "; ".join(item.notes)
    entry.sha256 = new_sha
    entry.size_bytes = sum(f.size_bytes or 0 for f in item.files) or None
    if isinstance(entry, BaseModel):
        entry.layout = item.layout
    if isinstance(entry, LoraAdapter):
        entry.trigger_words = item.trigger_words
    entry.upstream_fingerprint = fingerprint
    entry.synced_at = timezone.now()
    entry.save()
    _sync_files(entry, item)
    _set_tags(entry, item.tags)
    entry_link_same_file(entry)
    return UpsertResult(entry, "created" if created else "updated")


def entries_mark_withdrawn(entries: list[CatalogEntry], *, reason: str) -> int:
    """Mark rows gone upstream; they are kept (installed files keep working, history stays readable)."""
    count = 0
    now = timezone.now()
    for entry in entries:
        if entry.status == Status.WITHDRAWN:
            continue
        type(entry).objects.filter(pk=entry.pk).update(
            status=Status.WITHDRAWN, withdrawn_at=now, status_message=reason, updated_at=now
        )
        count += 1
    return count
