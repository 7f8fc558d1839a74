"""The `django.contrib.sites` row that allauth's emails are signed with: "Kizy" at KIZY_SITE_URL.

Without it, password-reset mail says "[example.com] ..." and "Hello from example.com!". It is set after
every `migrate` (which `make up` runs at each start), so a changed KIZY_SITE_URL takes effect then.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

SITE_NAME = "Kizy"


def site_domain() -> str:
    """`host[:port]` of KIZY_SITE_URL (the Site model keeps a domain, not a URL)."""
    return urlsplit(settings.SITE_URL).netloc or settings.SITE_URL


def sync_site(*, using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    from django.contrib.sites.models import Site

    Site.objects.using(using).update_or_create(
        pk=settings.SITE_ID, defaults={"name": SITE_NAME, "domain": site_domain()[:100]}
    )
    Site.objects.clear_cache()
