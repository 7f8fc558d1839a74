"""Auto-pick: from a plain-language prompt to intents, a base model, LoRAs and detailers, with reasons.

Deterministic and offline. Intents are scored by a lexical matcher (curated keyword phrases) and, when
the bundled MiniLM model is installed, by sentence-embedding similarity to each intent's description
and example prompts; `scorers.py` holds both behind one small base class.
"""

from .engine import suggest  # noqa: E402

__all__ = ["suggest", "warm_up"]


def warm_up() -> None:
    """Build the intent index (and load the embedding model) ahead of the first suggestion."""
    from .index import current_index

    current_index()
