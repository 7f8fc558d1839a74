"""Reads: catalog listings with search and filters, and compatibility checks (visibility: access.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet

from . import access
from .compat import Compatibility, family_compatibility, shape_compatibility
from .models import BaseModel, CatalogEntry, Intent, LoraAdapter, Source, Status
from .services.install import base_model_local_dir, lora_local_file

LIST_ORDER = ("-featured", "-approved", "-download_count", "name", "id")


def _search(queryset: QuerySet[Any], text: str, extra: tuple[str, ...] = ()) -> QuerySet[Any]:
    for word in text.split()[:8]:
        condition = (
            Q(name__icontains=word)
            | Q(description__icontains=word)
            | Q(tags__name__icontains=word)
            | Q(creator_name__icontains=word)
            | Q(upstream_base_model__icontains=word)
        )
        for field in extra:
            condition |= Q(**{f"{field}__icontains": word})
        queryset = queryset.filter(condition)
    return queryset.distinct()


def _common_filters(queryset: QuerySet[Any], params: Mapping[str, str]) -> QuerySet[Any]:
    if params.get("family"):
        queryset = queryset.filter(family__in=params["family"].split(","))
    if params.get("source"):
        queryset = queryset.filter(source__in=params["source"].split(","))
    if params.get("tag"):
        for tag in params["tag"].split(","):
            queryset = queryset.filter(tags__name=tag.strip().lower())
    if params.get("status"):
        queryset = queryset.filter(status__in=params["status"].split(","))
    else:
        queryset = queryset.exclude(status=Status.WITHDRAWN)
    if params.get("featured") in ("1", "true"):
        queryset = queryset.filter(featured=True)
    if params.get("installed") in ("1", "true"):
        queryset = queryset.filter(status=Status.INSTALLED)
    visibility = params.get("visibility")
    if visibility == "private":
        queryset = queryset.filter(workspace__isnull=False)
    elif visibility == "public":
        queryset = queryset.filter(workspace__isnull=True)
    return queryset


def intent_slugs(value: str) -> list[str]:
    return [slug.strip() for slug in value.split(",") if slug.strip()]


def unknown_intents(value: str) -> list[str]:
    slugs = intent_slugs(value)
    known = set(Intent.objects.filter(slug__in=slugs, is_active=True).values_list("slug", flat=True))
    return [slug for slug in slugs if slug not in known]


def model_list(*, workspace: Any, params: Mapping[str, str]) -> QuerySet[BaseModel]:
    queryset = _common_filters(access.visible_models(workspace), params)
    if params.get("intent"):
        # A base model suits an intent when it is of the family the intent suggests (what Auto picks).
        families = Intent.objects.filter(slug__in=intent_slugs(params["intent"]), is_active=True).values_list(
            "suggested_family", flat=True
        )
        queryset = queryset.filter(family__in=list(families))
    if params.get("q"):
        queryset = _search(queryset, params["q"])
    return queryset.prefetch_related("tags", "files").order_by(*LIST_ORDER)


def lora_list(*, workspace: Any, params: Mapping[str, str]) -> QuerySet[LoraAdapter]:
    queryset = _common_filters(access.visible_loras(workspace), params)
    if params.get("intent"):
        queryset = queryset.filter(intents__slug__in=intent_slugs(params["intent"]))
    if params.get("q"):
        queryset = _search(queryset, params["q"], extra=("trigger_words",))
    return queryset.prefetch_related("tags", "files", "intents").distinct().order_by(*LIST_ORDER)


def lora_compatibility(*, lora: LoraAdapter, model: BaseModel) -> Compatibility:
    """Can `lora` be applied to `model`? Families first, then layer shapes when both are on this machine."""
    by_family = family_compatibility(
        lora_name=lora.name, lora_family=lora.family, model_name=model.name, model_family=model.family
    )
    if not by_family.ok:
        return by_family
    lora_file, base_dir = lora_local_file(lora), base_model_local_dir(model)
    if lora_file is None or base_dir is None:
        return by_family
    return (
        shape_compatibility(
            lora_file=lora_file, base_dir=base_dir, lora_name=lora.name, model_name=model.name
        )
        or by_family
    )


def latest_download(entry: CatalogEntry) -> Any:
    return entry.downloads.order_by("-created_at").first()


def installed_models(workspace: Any) -> QuerySet[BaseModel]:
    return access.visible_models(workspace).filter(status=Status.INSTALLED)


def source_label(entry: CatalogEntry) -> str:
    return Source(entry.source).label
