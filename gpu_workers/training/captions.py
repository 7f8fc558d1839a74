"""Captions for training images, and unique trigger words.

A caption says what is in the picture with the trigger word standing for what the LoRA should learn.
Without a captioning model, it is written from the user's description and the goal: "a photo of
<trigger>, <description>" for a subject, "<description>, in the style of <trigger>" for a style, with
the image's orientation. When a BLIP captioning model is installed (``<model store>/local/captioner``,
safetensors), its description of each image is used instead of the user's one, with the trigger word
added, which teaches the LoRA what varies between images and what stays (the subject or the style).
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

# Consonant-vowel syllables make pronounceable, rare tokens (like "ohwx" or "sks", but less colliding).
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
TRIGGER_PATTERN = re.compile(r"^[a-z][a-z0-9_]{2,39}$")


def make_trigger_word(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A short, rare, pronounceable token from the name's first letters plus random syllables."""
    stem = re.sub(r"[^a-z]", "", name.lower())[:3] or "kz"
    for _ in range(100):
        syllables = "".join(secrets.choice(_CONSONANTS) + secrets.choice(_VOWELS) for _ in range(2))
        word = f"{stem}{syllables}{secrets.choice(_CONSONANTS)}"
        if word not in taken:
            return word
    return f"{stem}{secrets.token_hex(4)}"


def _orientation(width: int, height: int) -> str:
    if width > height * 1.15:
        return "landscape"
    if height > width * 1.15:
        return "portrait"
    return "square"


def template_caption(
    *,
    trigger_word: str,
    description: str,
    goal_type: str,
    width: int,
    height: int,
    from_video: bool = False,
    seen: str = "",
) -> str:
    """The caption written from the description when no captioning model is installed."""
    description = " ".join(description.split()).rstrip(".")
    what = seen or description
    shot = "a video still" if from_video else "a photo" if goal_type == "subject" else "an image"
    framing = f"{_orientation(width, height)} composition"
    if goal_type == "style":
        parts = [f"{shot} in the style of {trigger_word}", what, framing]
    else:
        parts = [f"{shot} of {trigger_word}", what, framing]
    return ", ".join(part for part in parts if part)


def replace_trigger(caption: str, old: str, new: str) -> str:
    """Swap a renamed trigger word in a caption (whole words only)."""
    if not old or old == new:
        return caption
    return re.sub(rf"\b{re.escape(old)}\b", new, caption)


class Captioner:
    """BLIP image captioning from a local folder; ``available()`` is False when it is not installed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._model: Any = None
        self._processor: Any = None

    def available(self) -> bool:
        return (self.folder / "config.json").is_file() and any(self.folder.glob("*.safetensors"))

    def _load(self) -> None:
        from gpu_workers.models.lazy import untyped

        transformers = untyped("transformers")
        self._processor = transformers.BlipProcessor.from_pretrained(self.folder)
        self._model = transformers.BlipForConditionalGeneration.from_pretrained(
            self.folder, use_safetensors=True
        )
        self._model.eval()

    def describe(self, image: Image.Image) -> str:
        import torch

        if self._model is None:
            self._load()
        inputs = self._processor(images=image.convert("RGB"), return_tensors="pt")
        with torch.no_grad():
            tokens = self._model.generate(**inputs, max_new_tokens=30)
        text = str(self._processor.decode(tokens[0], skip_special_tokens=True)).strip()
        return re.sub(r"^(a|an) (photo|picture|image) of ", "", text)
