"""The intent index, rebuilt whenever the intents change (count or last edit), in any process."""

from __future__ import annotations

import threading
from typing import Any

from django.db.models import Count, Max

from ..models import Intent
from .embeddings import default_embedder
from .scorers import EmbeddingScorer, HybridScorer, IntentCard, IntentScorer, LexicalScorer

_lock = threading.Lock()
_cache: dict[str, Any] = {"key": None, "scorer": None, "cards": None}


def cards_from_db() -> list[IntentCard]:
    return [
        IntentCard.build(
            slug=i.slug,
            name=i.name,
            description=i.description,
            examples=list(i.example_prompts or []),
            keywords=list(i.keywords or []),
            position=i.position,
        )
        for i in Intent.objects.filter(is_active=True).order_by("position", "slug")
    ]


def build_scorer(cards: list[IntentCard], *, use_embeddings: bool) -> IntentScorer:
    lexical = LexicalScorer(cards)
    embedder = default_embedder() if use_embeddings else None
    if embedder is None:
        return lexical
    return HybridScorer(lexical, EmbeddingScorer(cards, embedder))


def current_index(*, use_embeddings: bool = True) -> tuple[IntentScorer, list[IntentCard]]:
    stats = Intent.objects.filter(is_active=True).aggregate(count=Count("id"), latest=Max("updated_at"))
    key = (stats["count"], stats["latest"], use_embeddings)
    with _lock:
        if _cache["key"] != key:
            cards = cards_from_db()
            _cache.update(key=key, scorer=build_scorer(cards, use_embeddings=use_embeddings), cards=cards)
        return _cache["scorer"], _cache["cards"]
