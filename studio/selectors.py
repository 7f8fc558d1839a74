"""Reads for generation jobs."""
from __future__ import annotations

import re
import time
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from .models import TERMINAL, Generation

PREFER_WAIT_MAX = 60
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait(?:=(\d+))?(?:$|[,;\s])")


def prefer_wait_seconds(header: str | None, default: int = PREFER_WAIT_MAX) -> int | None:
    """`Prefer: wait` → default seconds; `Prefer: wait=N` → N (capped); absent → None."""
    if not header:
        return None
    match = _PREFER_WAIT.search(header.strip().lower())
    if not match:
        return None
    return min(int(match.group(1)) if match.group(1) else default, PREFER_WAIT_MAX)


def wait_until_terminal(generation: Generation, seconds: float, poll: float = 0.1) -> Generation:
    deadline = time.monotonic() + seconds
    while generation.status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(poll)
        generation.refresh_from_db()
    return generation


def filter_generations(queryset: QuerySet[Generation], params: Any) -> QuerySet[Generation]:
    """Filters shared by the API list and the gallery page: status, model, lora, source, dates."""
    if status := params.get("status"):
        queryset = queryset.filter(status__in=status.split(","))
    if source := params.get("source"):
        queryset = queryset.filter(source=source)
    if model := params.get("model"):
        queryset = queryset.filter(model_ref=model)
    if lora := params.get("lora"):
        # JSON containment is not available on SQLite; the quoted-substring match is exact enough there.
        queryset = (queryset.filter(lora_refs__contains=[lora]) if connection.vendor == "postgresql"
                    else queryset.filter(lora_refs__icontains=f'"{lora}"'))
    if after := params.get("created_after"):
        queryset = queryset.filter(created_at__date__gte=after)
    if before := params.get("created_before"):
        queryset = queryset.filter(created_at__date__lte=before)
    if q := params.get("q"):
        queryset = queryset.filter(request__prompt__icontains=q)
    return queryset

