"""`manage.py check --deploy` checks of Kizy's own production profile."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register("kizy", deploy=True)
def sqlite_in_production(app_configs: Any = None, **_: Any) -> list[Warning]:
    """SQLite serves one machine: web and workers on separate machines would each see their own file."""
    if not getattr(settings, "PRODUCTION", False):
        return []
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        return []
    return [
        Warning(
            "The production profile is using SQLite, which web and workers on separate machines cannot share.",
            hint="Set DATABASE_URL to a PostgreSQL database, e.g. postgres://user:pass@host:5432/kizy.",
            id="kizy.W001",
        )
    ]
