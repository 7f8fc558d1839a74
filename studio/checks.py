"""System checks for the studio's settings."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

WEBHOOK_TAG = "kizy_webhooks"


@register(Tags.security, WEBHOOK_TAG, deploy=True)
def webhook_private_destinations_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """KIZY_WEBHOOK_ALLOW_PRIVATE lets webhooks reach loopback and private networks (for a receiver on
    a laptop). A deployment must never have it: `check --deploy` fails instead of ignoring it."""
    if not getattr(settings, "KIZY_WEBHOOK_ALLOW_PRIVATE", False):
        return []
    return [Error(
        "KIZY_WEBHOOK_ALLOW_PRIVATE is on: webhooks could be pointed at this server's private network "
        "(cloud metadata, databases). The production profile refuses such destinations anyway.",
        hint="Remove KIZY_WEBHOOK_ALLOW_PRIVATE from the environment; it is for local development only.",
        id="studio.E001",
    )]
