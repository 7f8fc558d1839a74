"""The only way to fetch catalog rows for a workspace.

Visible = the public catalog (approved and not hidden by staff) plus the workspace's own private
entries. Anything else — another workspace's private LoRA, an unapproved sync result — is "not found",
with the same message whether it exists or not, so ids cannot be probed (T2/T3). The studio and the
engine call `store_ref_for_*` to turn a catalog id into a model-store reference.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.http import Http404

from .models import BaseModel, CatalogEntry, LoraAdapter, Source, Status, visible_q

Entry = TypeVar("Entry", bound=CatalogEntry)


class CatalogEntryNotFound(Http404, LookupError):
    """404 for the API, LookupError for graph validation (studio.references)."""


def visible_models(workspace: Any) -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(visible_q(workspace))


def visible_loras(workspace: Any) -> QuerySet[LoraAdapter]:
    return LoraAdapter.objects.filter(visible_q(workspace))


def model_ids_visible_to(workspace: Any) -> QuerySet[Any]:
    return visible_models(workspace).values_list("id", flat=True)


def lora_ids_visible_to(workspace: Any) -> QuerySet[Any]:
    return visible_loras(workspace).values_list("id", flat=True)


def _get(queryset: QuerySet[Entry], id: object, what: str) -> Entry:
    try:
        return queryset.get(id=uuid.UUID(str(id)))
    except (queryset.model.DoesNotExist, ValueError, TypeError, AttributeError) as exc:
        raise CatalogEntryNotFound(f"No {what} with id {id} in this workspace's catalog.") from exc


def get_model_for_workspace(*, workspace: Any, id: object) -> BaseModel:
    return _get(visible_models(workspace).prefetch_related("tags", "files"), id, "model")


def get_lora_for_workspace(*, workspace: Any, id: object) -> LoraAdapter:
    return _get(visible_loras(workspace).prefetch_related("tags", "files", "intents"), id, "LoRA")


def get_private_lora_for_workspace(*, workspace: Any, id: object) -> LoraAdapter:
    """A LoRA this workspace owns (imported or trained), for changes only the owner may make."""
    return _get(LoraAdapter.objects.filter(workspace=workspace), id, "private LoRA")


def store_ref_of(entry: CatalogEntry) -> str | None:
    """The model-store reference a worker can load, or None when the weights are not available."""
    if entry.store_ref and entry.status in (Status.INSTALLED, Status.WITHDRAWN):
        return entry.store_ref  # files already installed keep working after an upstream withdrawal
    if entry.status == Status.WITHDRAWN:
        return None
    if entry.source == Source.HUGGINGFACE and isinstance(entry, BaseModel):
        revision = f"@{entry.revision}" if entry.revision else ""
        return f"hf:{entry.external_id}{revision}"  # workers may fetch hub pipelines themselves
    return None


def _store_ref(entry: CatalogEntry, kind: str) -> str:
    ref = store_ref_of(entry)
    if ref is None:
        state = "was withdrawn upstream" if entry.status == Status.WITHDRAWN else "is not installed yet"
        raise CatalogEntryNotFound(f"{kind} {entry} ({entry.id}) {state}; install it from the catalog first.")
    return ref


def _by_id_or_ref(queryset: QuerySet[Entry], ref: str, what: str) -> Entry:
    try:
        uuid.UUID(ref)
    except ValueError:
        # An already-resolved store reference is accepted only if it is one of this workspace's entries.
        entry = queryset.filter(store_ref=ref).first()
        if entry is None:
            raise CatalogEntryNotFound(f"{ref!r} is not a {what} in this workspace's catalog.") from None
        return entry
    return _get(queryset, ref, what)


def store_ref_for_model(*, workspace: Any, ref: str) -> str:
    return _store_ref(_by_id_or_ref(visible_models(workspace), ref, "model"), "Model")


def store_ref_for_lora(*, workspace: Any, ref: str) -> str:
    return _store_ref(_by_id_or_ref(visible_loras(workspace), ref, "LoRA"), "LoRA")
