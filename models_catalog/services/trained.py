"""Register a LoRA trained in Kizy as a private catalog entry of its workspace (called by `training`).

The weights already live in the workspace's artifact space (content-addressed keys), so the entry is
installed at once with an `artifact:` reference that only that workspace's jobs can load. Idempotent:
registering the same training twice returns the same row.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import transaction

from ..families import RUNNABLE_FAMILIES, Family
from ..models import LoraAdapter, ModelFile, Source, Status
from .upsert import entry_link_same_file


class TrainedFile(NamedTuple):
    name: str
    key: str
    sha256: str
    size: int


@transaction.atomic
def lora_register_trained(
    *,
    workspace: Any,
    user: Any,
    training_id: str,
    name: str,
    description: str = "",
    family: str,
    trigger_words: list[str],
    weights: TrainedFile,
    kohya: TrainedFile | None = None,
) -> LoraAdapter:
    if not weights.key.startswith(f"ws/{workspace.pk}/"):
        raise ValueError("trained weights must live in the workspace's own artifact space")
    lora, _ = LoraAdapter.objects.update_or_create(
        workspace=workspace,
        source=Source.TRAINED,
        external_id=str(training_id),
        external_version="",
        defaults={
            "created_by": user,
            "name": name[:200] or "Trained LoRA",
            "description": description,
            "family": family if family in RUNNABLE_FAMILIES else Family.UNKNOWN,
            "family_flagged": family not in RUNNABLE_FAMILIES,
            "detected_family": family,
            "lora_format": "diffusers",
            "trigger_words": [w for w in trigger_words if w],
            "status": Status.INSTALLED,
            "status_message": "",
            "store_ref": f"artifact:{weights.key}",
            "sha256": weights.sha256,
            "size_bytes": weights.size,
            "revision": weights.sha256,
            "recommended_weight": 0.9,
        },
    )
    keep = []
    for file, primary in ((weights, True), (kohya, False)):
        if file is None:
            continue
        ModelFile.objects.update_or_create(
            lora=lora,
            name=file.name,
            defaults={
                "size_bytes": file.size,
                "sha256": file.sha256,
                "is_primary": primary,
                "kind": "Model" if primary else "kohya",
                "local_path": "",
                "installed_at": lora.updated_at,
            },
        )
        keep.append(file.name)
    ModelFile.objects.filter(lora=lora).exclude(name__in=keep).delete()
    entry_link_same_file(lora)
    return lora
