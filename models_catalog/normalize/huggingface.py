"""Hugging Face model info (see `clients.huggingface.model_info_dict`) -> an UpstreamItem.

Base models are diffusers pipelines (a `diffusers:<Pipeline>` tag); LoRAs carry the `lora` tag and name
their base in `base_model:adapter:<repo>` tags or the card's `base_model`. The card's `instance_prompt`
is the trigger word (DreamBooth/LoRA training scripts write it there).
"""

from __future__ import annotations

from typing import Any

from gpu_workers.models.store import choose_hf_files

from ..families import FAMILY_DEFAULTS, NON_COMMERCIAL_LICENSES, Rating, hf_family
from .types import UpstreamFile, UpstreamItem, clean_tags, plain_text

_SKIP_TAG_PREFIXES = ("base_model:", "diffusers:", "license:", "region:", "endpoints_compatible", "template:")
_PREFERRED_LORA_NAMES = ("pytorch_lora_weights.safetensors", "lora.safetensors")


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def base_models_of(info: dict[str, Any]) -> list[str]:
    tags = info.get("tags") or []
    adapter = [t.split(":", 2)[2] for t in tags if t.startswith("base_model:adapter:")]
    plain = [t.split(":", 1)[1] for t in tags if t.startswith("base_model:") and t.count(":") == 1]
    return list(dict.fromkeys([*adapter, *_as_list((info.get("card_data") or {}).get("base_model")), *plain]))


def item_kind(info: dict[str, Any]) -> str | None:
    tags = info.get("tags") or []
    if "lora" in tags or any(t.startswith("base_model:adapter:") for t in tags):
        return "lora"
    if any(t.startswith("diffusers:") for t in tags) or info.get("library_name") == "diffusers":
        return "model"
    return None


def _license(info: dict[str, Any]) -> str:
    card_license = (info.get("card_data") or {}).get("license")
    if card_license:
        return str(card_license)[:100]
    tag = next((t for t in info.get("tags") or [] if t.startswith("license:")), "")
    return tag.split(":", 1)[1][:100] if tag else ""


def _lora_files(siblings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    weights = [s for s in siblings if s["rfilename"].endswith(".safetensors") and "/" not in s["rfilename"]]
    weights.sort(
        key=lambda s: (s["rfilename"] not in _PREFERRED_LORA_NAMES, -(s.get("size") or 0), s["rfilename"])
    )
    return weights[:1]


def _previews(info: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    previews = []
    for widget in (info.get("card_data") or {}).get("widget") or []:
        output = (widget or {}).get("output") or {}
        url = str(output.get("url") or "")
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            url = f"{endpoint}/{info['id']}/resolve/{info.get('sha') or 'main'}/{url.lstrip('/')}"
        previews.append({"url": url, "prompt": str(widget.get("text") or "")[:500], "nsfw_level": 0})
    return previews[:6]


def repo_item(info: dict[str, Any], *, endpoint: str) -> UpstreamItem | None:
    kind = item_kind(info)
    if kind is None:
        return None
    endpoint = endpoint.rstrip("/")
    repo = str(info["id"])
    revision = str(info.get("sha") or "")
    tags = [t for t in info.get("tags") or [] if not t.startswith(_SKIP_TAG_PREFIXES)]
    bases = base_models_of(info)
    family, flagged = hf_family(tags=info.get("tags") or [], base_models=bases)
    siblings = info.get("siblings") or []
    if kind == "lora":
        chosen = _lora_files(siblings)
    else:
        names = set(choose_hf_files(s["rfilename"] for s in siblings))
        chosen = [s for s in siblings if s["rfilename"] in names]
    files = [
        UpstreamFile(
            name=s["rfilename"],
            size_bytes=s.get("size"),
            sha256=str(s.get("sha256") or "").lower(),
            git_sha1="" if s.get("sha256") else str(s.get("blob_id") or ""),
            download_url=f"{endpoint}/{repo}/resolve/{revision or 'main'}/{s['rfilename']}",
            is_primary=(kind == "lora" and index == 0)
            or s["rfilename"].endswith("unet/diffusion_pytorch_model.safetensors")
            or s["rfilename"].endswith("transformer/diffusion_pytorch_model.safetensors"),
        )
        for index, s in enumerate(chosen)
    ]
    card = info.get("card_data") or {}
    license_name = _license(info)
    nsfw = int(Rating.X) if "not-for-all-audiences" in (info.get("tags") or []) else 0
    item = UpstreamItem(
        kind=kind,  # type: ignore[arg-type]
        source="huggingface",
        external_id=repo,
        revision=revision,
        name=str(card.get("model_name") or repo.split("/")[-1])[:200],
        description=plain_text(card.get("description") or ""),
        family=family,
        upstream_base_model=(bases[0] if bases else "")[:100],
        family_flagged=flagged,
        source_url=f"{endpoint}/{repo}",
        creator_name=str(info.get("author") or repo.split("/")[0])[:100],
        license=license_name,
        commercial_use=[],
        commercial_use_allowed=None if not license_name else license_name not in NON_COMMERCIAL_LICENSES,
        nsfw_level=nsfw,
        tags=clean_tags(tags),
        preview_images=_previews(info, endpoint),
        default_settings=dict(FAMILY_DEFAULTS.get(family, {})),
        trigger_words=[w.strip() for w in _as_list(card.get("instance_prompt")) if w.strip()],
        files=files,
        download_count=int(info.get("downloads") or 0),
        likes=int(info.get("likes") or 0),
        layout="diffusers" if kind == "model" else "single_file",
    )
    if not files:
        item.notes.append("no .safetensors weights in this repository; Kizy will not install it")
    if info.get("gated"):
        item.notes.append("gated on Hugging Face: set HF_TOKEN for an account that accepted its terms")
    if flagged:
        item.notes.append(f"base model {item.upstream_base_model or '(none)'!r} is not a family Kizy runs")
    return item
