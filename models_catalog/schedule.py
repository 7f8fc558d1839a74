"""The nightly catalog syncs that Celery beat runs (read by kizy_site/settings.py, so no models here).

In production both sources sync every night. In development (the embedded `make up`) none do unless
KIZY_CATALOG_SYNC_SOURCES names them: an offline laptop would otherwise call civitai.com and
huggingface.co every night and keep a failed sync report each time.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

SYNC_SOURCES = ("civitai", "huggingface")
NO_SOURCES = frozenset({"none", "off"})


def beat_sync_sources(value: str | None, *, production: bool) -> list[str]:
    """The sources to sync nightly: `value` is KIZY_CATALOG_SYNC_SOURCES as written (None when unset)."""
    if value is None:
        return list(SYNC_SOURCES) if production else []
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    if not names or set(names) <= NO_SOURCES:
        return []
    unknown = [name for name in names if name not in SYNC_SOURCES]
    if unknown:
        raise ImproperlyConfigured(
            f"KIZY_CATALOG_SYNC_SOURCES: unknown source {', '.join(unknown)}; "
            f"use a comma-separated list of {', '.join(SYNC_SOURCES)}, or none."
        )
    return list(dict.fromkeys(names))


def beat_schedule(sources: list[str], *, limit: int) -> dict[str, dict[str, Any]]:
    """One beat entry per source, 20 minutes apart from 03:17, so they never overlap on a small box."""
    return {
        f"catalog-sync-{source}": {
            "task": "models_catalog.sync",
            "schedule": crontab(hour=3, minute=17 + 20 * index),
            "kwargs": {"source": source, "limit": limit, "trigger": "beat", "recheck": 100},
        }
        for index, source in enumerate(sources)
    }
