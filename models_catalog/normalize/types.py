"""The neutral shape of one upstream catalog item (a CivitAI model version, a Hugging Face repo)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from html import unescape
from typing import Any, Literal

from django.utils.html import strip_tags

Kind = Literal["model", "lora"]
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")


@dataclass
class UpstreamFile:
    name: str
    size_bytes: int | None = None
    sha256: str = ""
    download_url: str = ""
    kind: str = "Model"
    is_primary: bool = False
    git_sha1: str = ""  # Hugging Face small (non-LFS) files: the git blob id, which is all the hub publishes


@dataclass
class UpstreamItem:
    kind: Kind
    source: str
    external_id: str
    name: str
    external_version: str = ""
    revision: str = ""
    version_name: str = ""
    description: str = ""
    family: str = "unknown"
    upstream_base_model: str = ""
    family_flagged: bool = False
    source_url: str = ""
    creator_name: str = ""
    license: str = ""
    commercial_use: list[str] = field(default_factory=list)
    commercial_use_allowed: bool | None = None
    allow_no_credit: bool | None = None
    allow_derivatives: bool | None = None
    allow_different_license: bool | None = None
    nsfw_level: int = 0
    tags: list[str] = field(default_factory=list)
    preview_images: list[dict[str, Any]] = field(default_factory=list)
    default_settings: dict[str, Any] = field(default_factory=dict)
    trigger_words: list[str] = field(default_factory=list)
    files: list[UpstreamFile] = field(default_factory=list)
    download_count: int = 0
    likes: int = 0
    layout: str = "diffusers"
    notes: list[str] = field(default_factory=list)

    @property
    def primary_file(self) -> UpstreamFile | None:
        return next((f for f in self.files if f.is_primary), self.files[0] if self.files else None)

    def fingerprint(self) -> str:
        """Hash of everything that can change upstream; equal fingerprints mean nothing to write."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


def plain_text(html: str | None, limit: int = 4000) -> str:
    """Upstream descriptions are HTML written by strangers: keep the words, never the markup."""
    text = unescape(strip_tags(html or ""))
    return re.sub(r"\s+", " ", text).strip()[:limit]


def clean_tags(tags: list[Any] | None) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags or []:
        name = re.sub(r"\s+", " ", str(tag)).strip().lower()[:64]
        if name:
            seen.setdefault(name, None)
    return sorted(seen)
