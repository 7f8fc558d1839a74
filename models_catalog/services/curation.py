"""Staff curation in bulk (the admin's actions call these)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..models import Intent, LoraAdapter

CURATION_FLAGS = frozenset({"approved", "featured", "hidden"})


@transaction.atomic
def entries_set_flags(*, queryset: QuerySet[Any], **flags: bool) -> int:
    """Set curation flags on many rows at once. Featuring implies approval; hiding removes the feature."""
    unknown = set(flags) - CURATION_FLAGS
    if unknown:
        raise ValueError(f"unknown curation flag(s): {', '.join(sorted(unknown))}")
    if flags.get("featured"):
        flags["approved"] = True
    if flags.get("hidden"):
        flags["featured"] = False
    return queryset.update(**flags, updated_at=timezone.now())


@transaction.atomic
def loras_assign_intents(
    *, queryset: QuerySet[LoraAdapter], intents: Iterable[Intent], replace: bool = False
) -> int:
    chosen = list(intents)
    count = 0
    for lora in queryset:
        if replace:
            lora.intents.set(chosen)
        else:
            lora.intents.add(*chosen)
        count += 1
    queryset.update(updated_at=timezone.now())
    return count
