"""What the studio needs from the catalog: visible models and LoRAs by id, the workspace's default
model, store references for the worker, and the auto-pick. Visibility is the catalog's own rule
(`visible_q`: public curated entries plus the workspace's private ones, T3)."""
from __future__ import annotations

from typing import Any

from accounts.models import Workspace
from models_catalog.models import BaseModel, LoraAdapter, Status, visible_q

from .compiler import LoraChoice, ModelChoice

RUNNABLE = (Status.INSTALLED, Status.AVAILABLE)
STORE_PREFIXES = ("local:", "hf:", "civitai:", "artifact:")


def _visible(model: type[BaseModel] | type[LoraAdapter], workspace: Workspace) -> Any:
    return model.objects.filter(visible_q(workspace)).exclude(status=Status.WITHDRAWN)


def model_entry(*, workspace: Workspace, ref: str) -> BaseModel:
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        return _visible(BaseModel, workspace).get(pk=ref)
    except (BaseModel.DoesNotExist, DjangoValidationError, ValueError) as exc:
        raise LookupError(f"no model with id {ref!r} in this workspace's catalog; "
                          "list them with GET /api/v1/models.") from exc


def lora_entry(*, workspace: Workspace, ref: str) -> LoraAdapter:
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        return _visible(LoraAdapter, workspace).get(pk=ref)
    except (LoraAdapter.DoesNotExist, DjangoValidationError, ValueError) as exc:
        raise LookupError(f"no LoRA with id {ref!r} in this workspace's catalog; "
                          "list them with GET /api/v1/loras.") from exc


def installed_ref(entry: BaseModel | LoraAdapter, kind: str) -> str:
    if not entry.store_ref:
        raise LookupError(f"{kind} {entry.name!r} is not installed yet ({entry.get_status_display()}); "
                          "install it from the catalog first.")
    return entry.store_ref


def store_ref_for_model(*, workspace: Workspace, ref: str) -> str:
    return installed_ref(model_entry(workspace=workspace, ref=ref), "model")


def store_ref_for_lora(*, workspace: Workspace, ref: str) -> str:
    return installed_ref(lora_entry(workspace=workspace, ref=ref), "LoRA")


def workspace_default_model(*, workspace: Workspace) -> BaseModel | None:
    """The model chosen in the workspace's settings, while it is still visible and installed."""
    if not workspace.default_model_id:
        return None
    return _visible(BaseModel, workspace).exclude(store_ref="").filter(pk=workspace.default_model_id).first()


def default_model(*, workspace: Workspace) -> BaseModel:
    """The workspace's default: the one chosen in its settings while it is visible and installed, else a
    featured installed model, else any installed one."""
    if (chosen := workspace_default_model(workspace=workspace)) is not None:
        return chosen
    entry = _visible(BaseModel, workspace).exclude(store_ref="").order_by("-featured", "-approved", "name").first()
    if entry is None:
        raise LookupError("No model is installed yet. Run `python manage.py load_demo_catalog` or install one "
                          "from the catalog.")
    return entry


def model_choice(entry: BaseModel) -> ModelChoice:
    return ModelChoice(id=str(entry.pk), family=entry.family, defaults=dict(entry.default_settings or {}))


def lora_choices(*, workspace: Workspace, model: BaseModel, picks: list[dict[str, Any]],
                 known: dict[tuple[str, str], str] | None = None) -> list[LoraChoice]:
    """Check each pick (visible, installed, same family); record its store ref in `known`."""
    choices = []
    for pick in picks:
        entry = lora_entry(workspace=workspace, ref=str(pick["id"]))
        family = entry.detected_family or entry.family
        if family and model.family and family != model.family:
            raise LookupError(f"LoRA {entry.name!r} is for {family} models; {model.name!r} is {model.family}. "
                              "Pick a LoRA made for this model's family.")
        ref = installed_ref(entry, "LoRA")
        if known is not None:
            known[("lora", str(entry.pk))] = ref
        choices.append(LoraChoice(id=str(entry.pk), weight=float(pick.get("weight", entry.recommended_weight)),
                                  reason=str(pick.get("reason", ""))))
    return choices


def auto_pick(*, workspace: Workspace, prompt: str, model: BaseModel | None) -> tuple[BaseModel, list[dict[str, Any]]]:
    """The catalog's suggestion for this prompt: its model (unless the person chose one) and its LoRAs as
    {id, weight, reason} picks, each with the reason the studio shows."""
    from models_catalog.suggest import suggest

    model = model or workspace_default_model(workspace=workspace)  # a default set in Settings beats the guess
    result = suggest(prompt=prompt, workspace=workspace, model=model)
    if model is None:
        suggested = (result.get("model") or {})
        model = (model_entry(workspace=workspace, ref=str(suggested["id"]))
                 if suggested.get("id") and suggested.get("installed") else default_model(workspace=workspace))
    picks = [{"id": str(lora["id"]), "weight": lora["weight"], "reason": lora["reason"]}
             for lora in result.get("loras", []) if lora.get("installed", True)][:3]
    return model, picks
