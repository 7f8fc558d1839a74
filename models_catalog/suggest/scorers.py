"""Intent scorers. Each returns, per intent slug, a score in [0, 1] and the evidence behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from .embeddings import Embedder
from .text import contains_phrase, phrase_tokens, prompt_tokens


@dataclass(frozen=True)
class IntentCard:
    """What scorers know about an intent (plain data, so the index can be cached across requests)."""

    slug: str
    name: str
    description: str
    examples: tuple[str, ...]
    keywords: tuple[tuple[tuple[str, ...], str, float], ...]  # (tokens, original phrase, weight)
    position: int

    @classmethod
    def build(
        cls,
        *,
        slug: str,
        name: str,
        description: str,
        examples: list[str],
        keywords: list[list[object]],
        position: int,
    ) -> IntentCard:
        parsed = []
        for entry in keywords:
            phrase, weight = (
                (entry[0], entry[1]) if isinstance(entry, list | tuple) and len(entry) == 2 else (entry, 1)
            )
            parsed.append((phrase_tokens(str(phrase)), str(phrase), float(weight)))  # type: ignore[arg-type]
        return cls(slug, name, description, tuple(examples), tuple(parsed), position)


@dataclass
class Evidence:
    score: float = 0.0
    phrases: list[str] = field(default_factory=list)
    nearest_example: str = ""
    similarity: float | None = None


class IntentScorer(ABC):
    name: str = "scorer"

    @abstractmethod
    def score(self, prompt: str) -> dict[str, Evidence]: ...


class LexicalScorer(IntentScorer):
    """Sum of matched keyword-phrase weights, squashed to [0, 1): robust, explainable, instant."""

    name = "lexical"
    SATURATION = 4.0

    def __init__(self, cards: list[IntentCard]) -> None:
        self.cards = cards

    def score(self, prompt: str) -> dict[str, Evidence]:
        words = prompt_tokens(prompt)
        result = {}
        for card in self.cards:
            matched, seen = [], set()
            for toks, original, weight in card.keywords:
                if toks not in seen and contains_phrase(words, toks):
                    seen.add(toks)
                    matched.append((original, weight))
            raw = sum(weight for _, weight in matched)
            matched.sort(key=lambda item: (-item[1], item[0]))
            result[card.slug] = Evidence(score=raw / (raw + self.SATURATION), phrases=[p for p, _ in matched])
        return result


class EmbeddingScorer(IntentScorer):
    """Cosine similarity to each intent's description and example prompts (best example and centroid)."""

    name = "embeddings"

    def __init__(self, cards: list[IntentCard], embedder: Embedder) -> None:
        self.cards = cards
        self.embedder = embedder
        self._texts: list[tuple[str, str]] = []  # (slug, text)
        for card in cards:
            self._texts.append((card.slug, f"{card.name}. {card.description}"))
            self._texts += [(card.slug, example) for example in card.examples]
        self._vectors = embedder.embed([text for _, text in self._texts]) if self._texts else np.zeros((0, 1))

    def score(self, prompt: str) -> dict[str, Evidence]:
        query = self.embedder.embed([prompt])[0]
        sims = self._vectors @ query if len(self._vectors) else np.zeros(0)
        result = {}
        for card in self.cards:
            rows = [i for i, (slug, _) in enumerate(self._texts) if slug == card.slug]
            if not rows:
                result[card.slug] = Evidence()
                continue
            best = max(rows, key=lambda i: (float(sims[i]), -i))
            centroid = float(np.mean(sims[rows]))
            similarity = 0.6 * float(sims[best]) + 0.4 * centroid
            example = self._texts[best][1] if best != rows[0] else ""
            result[card.slug] = Evidence(
                score=max(0.0, similarity), nearest_example=example, similarity=round(float(sims[best]), 3)
            )
        return result


class HybridScorer(IntentScorer):
    """Lexical evidence where curated phrases match, semantic similarity everywhere else."""

    name = "hybrid"

    def __init__(
        self, lexical: LexicalScorer, semantic: EmbeddingScorer, lexical_weight: float = 0.5
    ) -> None:
        self.lexical, self.semantic, self.lexical_weight = lexical, semantic, lexical_weight

    def score(self, prompt: str) -> dict[str, Evidence]:
        lexical = self.lexical.score(prompt)
        semantic = self.semantic.score(prompt)
        combined = {}
        for slug, lex in lexical.items():
            sem = semantic.get(slug, Evidence())
            combined[slug] = Evidence(
                score=self.lexical_weight * lex.score + (1 - self.lexical_weight) * sem.score,
                phrases=lex.phrases,
                nearest_example=sem.nearest_example,
                similarity=sem.similarity,
            )
        return combined
