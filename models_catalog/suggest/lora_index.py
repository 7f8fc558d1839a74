"""The LoRA index: what every approved public LoRA is about, so Auto can pick ones no curator linked yet.

Curators link LoRAs to intents by hand, but most synced LoRAs are approved long before anyone does.
This index lets those be candidates too, matched on their tags, trigger words, name and description.
It is rebuilt when the public LoRAs change: the key is their count and latest `updated_at`, which every
save, curation action and tag change moves (see `touch_loras`), so all processes follow without a
restart. Visibility is still decided by `access.visible_loras` when the picks are fetched.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max

from ..models import LoraAdapter
from .text import contains_phrase, phrase_tokens, prompt_tokens

# Words too common in prompts and LoRA descriptions to be evidence of anything.
_STOPWORDS_TEXT = """
a an and are as at be by for from has have in into is it its of on or that the this to with
lora model style image picture photo quality high best detailed detail version trained
use using weight strength prompt trigger word your you can will also more
very good new make made work sd sdxl flux xl v1 v2 v3 1 2 3
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
MIN_DESCRIPTION_OVERLAP = 2


@dataclass(frozen=True)
class LoraCard:
    id: str
    family: str
    phrases: tuple[tuple[tuple[str, ...], str, str], ...]  # (tokens, original, kind: tag/trigger/name)
    description_words: frozenset[str]


@dataclass(frozen=True)
class LoraMatch:
    id: str
    hits: tuple[tuple[str, str], ...]  # (kind, phrase) in match order
    description_words: tuple[str, ...]

    @property
    def relevance(self) -> float:
        weights = {"trigger": 1.5, "tag": 1.0, "name": 1.0}
        return min(3.0, sum(weights[kind] for kind, _ in self.hits)) + 0.5 * min(len(self.description_words), 3)

    def reason(self) -> str:
        parts = []
        by_kind: dict[str, list[str]] = {}
        for kind, phrase in self.hits:
            by_kind.setdefault(kind, []).append(phrase)
        labels = {"tag": "its tags", "trigger": "its trigger words", "name": "its name"}
        for kind in ("tag", "trigger", "name"):
            if kind in by_kind:
                quoted = ", ".join(f"“{p}”" for p in by_kind[kind][:3])
                parts.append(f"the prompt matches {labels[kind]} {quoted}")
        if self.description_words:
            quoted = ", ".join(f"“{w}”" for w in self.description_words[:3])
            parts.append(f"its description mentions {quoted}")
        return " and ".join(parts)


def _content_words(text: str) -> set[str]:
    return {w for w in prompt_tokens(text) if len(w) > 2 and w not in STOPWORDS and not w.isdigit()}


def card_for(lora: LoraAdapter) -> LoraCard:
    phrases: dict[tuple[str, ...], tuple[tuple[str, ...], str, str]] = {}
    for kind, values in (
        ("trigger", list(lora.trigger_words or [])),
        ("tag", [tag.name for tag in lora.tags.all()]),
        ("name", [lora.name]),
    ):
        for value in values:
            toks = phrase_tokens(str(value))
            if kind == "name":  # a name matches only as a whole, and not when it is just noise
                toks = tuple(t for t in toks if t not in STOPWORDS)
            if toks and toks not in phrases and not (len(toks) == 1 and toks[0] in STOPWORDS):
                phrases[toks] = (toks, str(value), kind)
    return LoraCard(
        id=str(lora.id),
        family=lora.family,
        phrases=tuple(phrases.values()),
        description_words=frozenset(_content_words(lora.description)),
    )


class LoraIndex:
    """Lexical matcher over LoRA cards: exact phrase hits on tags/triggers/name, word overlap on text."""

    def __init__(self, cards: list[LoraCard]) -> None:
        self.cards = cards

    def match(self, prompt: str, *, family: str) -> list[LoraMatch]:
        words = prompt_tokens(prompt)
        content = {w for w in words if len(w) > 2 and w not in STOPWORDS and not w.isdigit()}
        matches = []
        for card in self.cards:
            if card.family != family:
                continue
            hits = tuple((kind, original) for toks, original, kind in card.phrases if contains_phrase(words, toks))
            overlap = sorted(content & card.description_words)
            described = tuple(overlap) if len(overlap) >= MIN_DESCRIPTION_OVERLAP else ()
            if hits or described:
                matches.append(LoraMatch(card.id, hits, described))
        return matches


_lock = threading.Lock()
_cache: dict[str, Any] = {"key": None, "index": None}


def _public_loras() -> Any:
    return LoraAdapter.objects.filter(workspace__isnull=True, approved=True, hidden=False)


def current_lora_index() -> LoraIndex:
    stats = LoraAdapter.objects.filter(workspace__isnull=True).aggregate(count=Count("id"), latest=Max("updated_at"))
    approved = _public_loras().count()
    key = (stats["count"], stats["latest"], approved)
    with _lock:
        if _cache["key"] != key:
            cards = [card_for(lora) for lora in _public_loras().prefetch_related("tags")]
            _cache.update(key=key, index=LoraIndex(cards))
        return _cache["index"]  # type: ignore[no-any-return]
