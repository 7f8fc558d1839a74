"""The nightly beat syncs: both sources in production, none from an offline `make up` unless asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from models_catalog.schedule import beat_schedule, beat_sync_sources

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "production", "expected"),
    [
        (None, True, ["civitai", "huggingface"]),
        (None, False, []),
        ("civitai", False, ["civitai"]),
        (" HuggingFace , civitai,civitai", False, ["huggingface", "civitai"]),
        ("none", True, []),
        ("", True, []),
    ],
)
def test_beat_sources_default_by_environment(value: str | None, production: bool, expected: list[str]) -> None:
    assert beat_sync_sources(value, production=production) == expected


def test_an_unknown_source_is_refused_with_the_choices() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown source civitaii.*civitai, huggingface, or none"):
        beat_sync_sources("civitaii", production=True)


def test_beat_entries_run_the_sync_task_at_night() -> None:
    schedule = beat_schedule(["civitai", "huggingface"], limit=50)
    assert sorted(schedule) == ["catalog-sync-civitai", "catalog-sync-huggingface"]
    civitai = schedule["catalog-sync-civitai"]
    assert civitai["task"] == "models_catalog.sync"
    assert civitai["kwargs"] == {"source": "civitai", "limit": 50, "trigger": "beat", "recheck": 100}
    assert civitai["schedule"] == crontab(hour=3, minute=17)
    assert schedule["catalog-sync-huggingface"]["schedule"] == crontab(hour=3, minute=37)


def _catalog_beat_entries(tmp_path: Path, **env: str) -> list[str]:
    """The catalog entries of CELERY_BEAT_SCHEDULE as a fresh process configures it from `env`."""
    base = {k: v for k, v in os.environ.items() if k not in ("KIZY_CATALOG_SYNC_SOURCES", "KIZY_ENV")}
    base.update({"DJANGO_SETTINGS_MODULE": "kizy_site.settings", "KIZY_HOME": str(tmp_path), **env})
    code = (
        "from django.conf import settings\n"
        "print(','.join(sorted(k for k in settings.CELERY_BEAT_SCHEDULE if k.startswith('catalog-sync'))))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [name for name in result.stdout.strip().split(",") if name]


def test_settings_schedule_no_syncs_in_development_unless_asked(tmp_path: Path) -> None:
    assert _catalog_beat_entries(tmp_path, KIZY_ENV="development") == []
    assert _catalog_beat_entries(tmp_path, KIZY_ENV="development", KIZY_CATALOG_SYNC_SOURCES="civitai") == [
        "catalog-sync-civitai"
    ]


def test_settings_schedule_both_syncs_in_production(tmp_path: Path) -> None:
    production: dict[str, Any] = {
        "KIZY_ENV": "production",
        "SECRET_KEY": "s" * 60,
        "ALLOWED_HOSTS": "kizy.example",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DATABASE_URL": "postgres://kizy:kizy@127.0.0.1:1/kizy",
    }
    assert _catalog_beat_entries(tmp_path, **production) == ["catalog-sync-civitai", "catalog-sync-huggingface"]
    assert _catalog_beat_entries(tmp_path, **production, KIZY_CATALOG_SYNC_SOURCES="none") == []
