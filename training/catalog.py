"""What training needs from the catalog: the base models it can train on, and registering the result.

Visibility is the catalog's own (`models_catalog.access`): public curated models plus the
workspace's private ones; another workspace's model id is "not found" (T3).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from accounts.models import Workspace
from gpu_workers.training.presets import FAMILIES
from models_catalog import access as catalog_access
from models_catalog.models import BaseModel, Intent, LoraAdapter


def trainable_models(*, workspace: Workspace) -> list[BaseModel]:
    """Installed models of a family Kizy trains LoRAs for (SD 1.5, SDXL, Flux)."""
    candidates: QuerySet[BaseModel] = catalog_access.visible_models(workspace).filter(family__in=FAMILIES)
    return [m for m in candidates.order_by("-featured", "name") if catalog_access.store_ref_of(m)]


def trainable_model(*, workspace: Workspace, id: object) -> tuple[BaseModel, str]:
    """(model, store reference) or a 400 that says what to pick instead."""
    try:
        model = catalog_access.get_model_for_workspace(workspace=workspace, id=id)
    except catalog_access.CatalogEntryNotFound as exc:
        raise ValidationError(
            {"model": f"{exc} List the models you can train on with GET /api/v1/trainings/presets."}
        ) from exc
    if model.family not in FAMILIES:
        raise ValidationError(
            {
                "model": f"{model.name} is a {model.get_family_display()} model; LoRA training supports "
                "SD 1.5, SDXL and Flux models."
            }
        )
    ref = catalog_access.store_ref_of(model)
    if ref is None:
        raise ValidationError(
            {"model": f"{model.name} is not installed yet; install it from the catalog first."}
        )
    return model, ref


def default_trainable_model(*, workspace: Workspace) -> BaseModel | None:
    models = trainable_models(workspace=workspace)
    return models[0] if models else None


MAX_INTENTS = 3


def intents_for(text: str) -> list[Intent]:
    """The intents the catalog's auto-pick ranks highest for a goal's name and description."""
    from models_catalog.suggest.engine import MIN_INTENT_SCORE, rank_intents

    if not text.strip():
        return []
    ranked, _scorer = rank_intents(text)
    slugs = [r.card.slug for r in ranked[:MAX_INTENTS] if r.evidence.score >= MIN_INTENT_SCORE]
    found = {intent.slug: intent for intent in Intent.objects.filter(slug__in=slugs)}
    return [found[slug] for slug in slugs if slug in found]


def register_trained_lora(
    *,
    job: Any,
    lora_key: str,
    lora_sha256: str,
    lora_size: int,
    kohya_key: str,
    kohya_sha256: str,
    kohya_size: int,
) -> LoraAdapter:
    """A workspace-private catalog entry with the trigger word, the family and the intents."""
    from models_catalog.services.curation import loras_assign_intents
    from models_catalog.services.trained import TrainedFile, lora_register_trained

    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in job.name.lower()).strip("-") or "lora"
    lora = lora_register_trained(
        workspace=job.workspace,
        user=job.created_by,
        training_id=str(job.pk),
        name=job.name,
        description=job.description,
        family=job.family,
        trigger_words=[job.trigger_word],
        weights=TrainedFile(f"{slug}.safetensors", lora_key, lora_sha256, lora_size),
        kohya=TrainedFile(f"{slug}-kohya.safetensors", kohya_key, kohya_sha256, kohya_size),
    )
    loras_assign_intents(
        queryset=LoraAdapter.objects.filter(pk=lora.pk),
        intents=intents_for(f"{job.name}. {job.description}"),
        replace=True,
    )
    return lora
