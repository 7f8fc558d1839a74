"""Tokenising prompts for phrase matching: lowercase words, light plural folding, phrases as sequences."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*")
_KEEP_S = ("ss", "us", "is", "ics", "ous")


def fold(word: str) -> str:
    """'sprites' -> 'sprite', 'cities' -> 'city'; leaves 'glass', 'octopus', 'physics' alone."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    words = []
    for word in _WORD.findall(text.lower().replace("’", "'")):
        # "16-bit" and "16 bit" should match each other: split hyphens but keep the joined form too.
        words.append(fold(word))
    return words


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    return tuple(part for word in tokens(phrase) for part in word.split("-"))


def prompt_tokens(text: str) -> list[str]:
    return [part for word in tokens(text) for part in word.split("-")]


def contains_phrase(haystack: list[str], phrase: tuple[str, ...]) -> bool:
    if not phrase:
        return False
    size = len(phrase)
    return any(tuple(haystack[i : i + size]) == phrase for i in range(len(haystack) - size + 1))
