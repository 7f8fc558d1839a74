"""Seeding the generation intents (data migration and `load_demo_catalog`)."""

from __future__ import annotations

from typing import Any

from ..seed_intents import INTENTS


def intents_seed(*, intent_model: Any = None) -> int:
    """Create the seeded intents that are missing; never overwrite a curator's edits. Returns how many."""
    if intent_model is None:
        from ..models import Intent as intent_model
    created = 0
    for position, data in enumerate(INTENTS):
        defaults = {key: value for key, value in data.items() if key != "slug"}
        _, was_created = intent_model.objects.get_or_create(
            slug=data["slug"], defaults={**defaults, "position": position * 10}
        )
        created += int(was_created)
    return created
