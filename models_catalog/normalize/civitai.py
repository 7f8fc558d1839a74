"""CivitAI payloads (`/models`, `/models/<id>`, `/model-versions/<id>`) -> UpstreamItems, one per version."""

from __future__ import annotations

from typing import Any

from ..clients.civitai import LORA_TYPES
from ..families import BASE_LICENSES, FAMILY_DEFAULTS, civitai_family, rating_allowed
from .types import PICKLE_SUFFIXES, UpstreamFile, UpstreamItem, clean_tags, plain_text

MAX_PREVIEWS = 6


def item_kind(model_type: str | None) -> str | None:
    if model_type in LORA_TYPES:
        return "lora"
    if model_type == "Checkpoint":
        return "model"
    return None


def site_url(api_base: str) -> str:
    base = api_base.rstrip("/")
    return base[: -len("/api/v1")] if base.endswith("/api/v1") else base


def _files(version: dict[str, Any]) -> list[UpstreamFile]:
    files = []
    for raw in version.get("files") or []:
        if raw.get("type") not in (None, "Model", "Pruned Model"):
            continue  # training data, configs, negatives: not weights Kizy loads
        hashes = raw.get("hashes") or {}
        size_kb = raw.get("sizeKB")
        files.append(
            UpstreamFile(
                name=str(raw.get("name") or f"{version.get('id')}.safetensors"),
                size_bytes=int(round(float(size_kb) * 1024)) if size_kb is not None else None,
                sha256=str(hashes.get("SHA256") or "").lower(),
                download_url=str(raw.get("downloadUrl") or version.get("downloadUrl") or ""),
                kind=str(raw.get("type") or "Model"),
                is_primary=bool(raw.get("primary")),
            )
        )
    _unique_names(files)
    # Prefer safetensors as the primary file when the author also uploaded a pickle.
    safe = [f for f in files if f.name.lower().endswith(".safetensors")]
    if safe and not any(f.is_primary and f in safe for f in files):
        for f in files:
            f.is_primary = f is safe[0]
    return files


def _unique_names(files: list[UpstreamFile]) -> None:
    """CivitAI publishes variants (pruned/full, fp16/fp32) under one name: suffix all but the primary."""
    taken: set[str] = {f.name for f in files if f.is_primary}
    for index, file in enumerate(files):
        if file.is_primary:
            continue
        if file.name in taken:
            stem, dot, suffix = file.name.rpartition(".")
            file.name = f"{stem}-variant{index}.{suffix}" if dot else f"{file.name}-variant{index}"
        taken.add(file.name)


def _previews(images: list[dict[str, Any]], nsfw_max: int) -> list[dict[str, Any]]:
    previews = []
    for image in images or []:
        if image.get("type", "image") != "image" or not image.get("url"):
            continue
        level = int(image.get("nsfwLevel") or 0)
        if not rating_allowed(level, nsfw_max) or image.get("minor") or image.get("poi"):
            continue
        preview = {
            "url": image["url"],
            "width": image.get("width"),
            "height": image.get("height"),
            "nsfw_level": level,
        }
        prompt = (image.get("meta") or {}).get("prompt") if isinstance(image.get("meta"), dict) else None
        if prompt:
            preview["prompt"] = str(prompt)[:500]
        previews.append(preview)
        if len(previews) >= MAX_PREVIEWS:
            break
    return previews


def _permission(model: dict[str, Any], key: str) -> bool | None:
    value = model.get(key)
    return value if isinstance(value, bool) else None


def version_item(
    model: dict[str, Any], version: dict[str, Any], *, api_base: str, nsfw_max: int
) -> UpstreamItem | None:
    """One catalog item for `version` of `model`; None when the model type is not one Kizy catalogues."""
    kind = item_kind(model.get("type"))
    if kind is None:
        return None
    base_model = str(version.get("baseModel") or "")
    family, flagged = civitai_family(base_model)
    allowed = [str(u) for u in (model.get("allowCommercialUse") or []) if u and u != "None"]
    if isinstance(model.get("allowCommercialUse"), str):
        allowed = [] if model["allowCommercialUse"] == "None" else [model["allowCommercialUse"]]
    files = _files(version)
    model_id, version_id = str(model["id"]), str(version["id"])
    stats = version.get("stats") or model.get("stats") or {}
    item = UpstreamItem(
        kind=kind,  # type: ignore[arg-type]
        source="civitai",
        external_id=model_id,
        external_version=version_id,
        revision=version_id,
        name=str(model.get("name") or f"CivitAI model {model_id}")[:200],
        version_name=str(version.get("name") or "")[:100],
        description=plain_text(model.get("description") or version.get("description")),
        family=family,
        upstream_base_model=base_model[:100],
        family_flagged=flagged,
        source_url=f"{site_url(api_base)}/models/{model_id}?modelVersionId={version_id}",
        creator_name=str((model.get("creator") or {}).get("username") or "")[:100],
        license=BASE_LICENSES.get(base_model) or BASE_LICENSES.get(family, ""),
        commercial_use=allowed,
        commercial_use_allowed=bool(allowed),
        allow_no_credit=_permission(model, "allowNoCredit"),
        allow_derivatives=_permission(model, "allowDerivatives"),
        allow_different_license=_permission(model, "allowDifferentLicense"),
        nsfw_level=int(version.get("nsfwLevel") or model.get("nsfwLevel") or 0),
        tags=clean_tags(model.get("tags")),
        preview_images=_previews(version.get("images") or [], nsfw_max),
        default_settings=dict(FAMILY_DEFAULTS.get(family, {})),
        trigger_words=[str(w).strip() for w in version.get("trainedWords") or [] if str(w).strip()],
        files=files,
        download_count=int(stats.get("downloadCount") or 0),
        likes=int(stats.get("thumbsUpCount") or 0),
        layout="single_file",
    )
    if files and all(f.name.lower().endswith(PICKLE_SUFFIXES) for f in files):
        item.notes.append("only pickle files are published; Kizy will refuse to install them")
    if flagged:
        item.notes.append(f"base model {base_model or '(none)'!r} is not a family Kizy runs")
    return item


def model_items(model: dict[str, Any], *, api_base: str, nsfw_max: int) -> list[UpstreamItem]:
    items = []
    for version in model.get("modelVersions") or []:
        item = version_item(model, version, api_base=api_base, nsfw_max=nsfw_max)
        if item is not None:
            items.append(item)
    return items


def model_from_version(version: dict[str, Any]) -> dict[str, Any]:
    """A minimal model payload around a `/model-versions/<id>` answer (which nests `model` briefly)."""
    model = dict(version.get("model") or {})
    model.setdefault("id", version.get("modelId"))
    model.setdefault("creator", version.get("creator"))
    model["modelVersions"] = [version]
    return model
