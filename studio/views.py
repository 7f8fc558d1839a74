"""Browser pages: the studio (prompt in, live progress, images out), the gallery and a generation's record.

The studio page itself talks to the same REST API and websocket as any client (static/js/studio.js);
these views only render the page and what it starts from. Reads go through `access.py` and
`selectors.py`; file links are the short-lived signed URLs of `serializers_output.output_files`.
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Scope, Workspace
from models_catalog.access import visible_loras, visible_models
from models_catalog.families import Family
from models_catalog.selectors import installed_models

from .access import generations_for_workspace, get_generation_for_workspace
from .forms import GalleryFilterForm
from .models import Generation, Source
from .request_schema import ASPECT_RATIOS, SCHEDULERS
from .selectors import filter_generations
from .serializers_output import generation_payload, output_files

GALLERY_PAGE_SIZE = 24
RECENT_IN_STUDIO = 8
DELIVERIES_ON_DETAIL = 50
STUDIO_ASPECT_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3")


STUDIO_FAMILIES = (Family.SD15, Family.SDXL, Family.FLUX)


class DefaultModelForm(forms.Form):
    """Settings → Workspace: the model used when a request names none (T3: this workspace's catalog only)."""

    model = forms.ChoiceField(label="Model", required=False,
                              help_text="Only installed image models are listed. Leave it on “Let Kizy choose” "
                                        "to use a featured installed model.")

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.models = list(installed_models(workspace).exclude(store_ref="").filter(family__in=STUDIO_FAMILIES)
                           .order_by("-featured", "name"))
        self.fields["model"].choices = [("", "Let Kizy choose (a featured installed model)")] + [
            (str(m.pk), f"{m.name} · {Family(m.family).label}{' · demo' if m.is_demo else ''}") for m in self.models]
        self.fields["model"].error_messages["invalid_choice"] = (
            "That model is not installed in this workspace's catalog; pick one from the list.")

    def chosen(self) -> Any:
        value = self.cleaned_data.get("model")
        return next((m for m in self.models if str(m.pk) == value), None)

    def current_name(self) -> str:
        from .catalog_bridge import workspace_default_model

        chosen = workspace_default_model(workspace=self.workspace)
        return chosen.name if chosen is not None else ""


def _workspace(request: HttpRequest) -> Workspace:
    return request.workspace  # type: ignore[attr-defined,no-any-return]


def _workspace_generations(request: HttpRequest) -> QuerySet[Generation]:
    """Every generation of the request's workspace: the one list the gallery pages start from."""
    return generations_for_workspace(workspace=_workspace(request))


def _can_generate(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and Scope.GENERATE in membership.scopes


def _catalog_state(workspace: Workspace) -> dict[str, bool]:
    """Whether any model is installed, and whether every installed one is a random-weight demo model."""
    installed = installed_models(workspace)
    has_models = installed.exists()
    demo_only = has_models and not installed.filter(is_demo=False).exists()
    return {"has_models": has_models, "demo_only": demo_only}


def _names(queryset: QuerySet[Any], ids: set[str]) -> dict[str, str]:
    return {str(pk): name for pk, name in queryset.filter(pk__in=ids).values_list("pk", "name")}


def _tiles(request: HttpRequest, generations: list[Generation]) -> list[dict[str, Any]]:
    """What a thumbnail needs: the first output's signed URL, the model's name, the prompt."""
    model_refs = {g.model_ref for g in generations if g.model_ref}
    model_names = _names(visible_models(_workspace(request)), model_refs)
    tiles = []
    for generation in generations:
        files = output_files(generation, request) if generation.status == "succeeded" else []
        tiles.append({
            "generation": generation,
            "thumbnail": next((f for f in files if f.get("kind") == "image"), None),
            "count": len(files),
            "prompt": str((generation.request or {}).get("prompt", "")) or generation.get_source_display(),
            "model_name": model_names.get(generation.model_ref, ""),
        })
    return tiles


def _model_records(models: Any) -> list[dict[str, Any]]:
    """The reproducibility record's models (`{port: {spec, details}}`) as rows: ref, family, hash, LoRAs."""
    rows = []
    for port, entry in (models or {}).items() if isinstance(models, dict) else ():
        entry = entry if isinstance(entry, dict) else {}
        spec = entry.get("spec") if isinstance(entry.get("spec"), dict) else {}
        details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
        loras = details.get("loras") if isinstance(details.get("loras"), list) else spec.get("loras") or []
        rows.append({
            "port": port, "ref": details.get("ref") or spec.get("ref", ""),
            "family": details.get("family") or spec.get("family", ""), "sha256": details.get("sha256", ""),
            "loras": [lora for lora in loras if isinstance(lora, dict)], "error": entry.get("error", ""),
        })
    return rows


def _studio_default_model(workspace: Workspace) -> str:
    """The model the picker starts on: the workspace's default (Settings), else the catalog's pick."""
    from .catalog_bridge import default_model

    try:
        return str(default_model(workspace=workspace).pk)
    except LookupError:
        return ""


def _workspace_default_set(workspace: Workspace) -> bool:
    from .catalog_bridge import workspace_default_model

    return workspace_default_model(workspace=workspace) is not None


def _lora_start(request: HttpRequest, workspace: Workspace, lora_id: str) -> dict[str, Any]:
    """`?lora=<id>` (the training page's "Use in the studio"): that LoRA picked at its default weight,
    on a model of its family. Unknown or another workspace's ids get a message, and the studio starts
    as usual (T3: `lora_entry` only sees this workspace's catalog)."""
    from .catalog_bridge import lora_entry

    try:
        lora = lora_entry(workspace=workspace, ref=lora_id)
    except LookupError:
        messages.warning(request, "That LoRA is not in this workspace's catalog, so nothing was picked.")
        return {}
    if lora.status != "installed" or not lora.store_ref:
        messages.warning(request, f"The LoRA “{lora.name}” is not installed yet ({lora.get_status_display()}); "
                                  "install it from the catalog, then try again.")
        return {}
    family = lora.detected_family or lora.family
    models = installed_models(workspace).exclude(store_ref="")
    default = _studio_default_model(workspace)
    model = (models.filter(pk=default, family=family).first() if default else None) or (
        models.filter(family=family).order_by("-featured", "-approved", "name").first())
    if model is None:
        label = Family(family).label if family in Family.values else family
        messages.warning(request, f"The LoRA “{lora.name}” is for {label} models, and no such "
                                  "model is installed. Install one from the catalog to use it.")
        return {}
    return {"model": str(model.pk), "lora": {"id": str(lora.pk), "name": lora.name, "family": family,
                                             "weight": float(lora.recommended_weight)}}


def _rerunnable(generation: Generation) -> bool:
    request = generation.request or {}
    return generation.source != Source.WORKFLOW and bool(request.get("prompt")) and bool(request.get("model"))


@login_required
def studio(request: HttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    start: dict[str, Any] = {}
    source_id = request.GET.get("from") or request.GET.get("watch")
    if source_id:
        try:
            generation = get_generation_for_workspace(workspace=workspace, id=source_id)
        except Http404:
            messages.warning(request, "That generation is not in this workspace, so the studio starts empty.")
        else:
            if "watch" in request.GET:
                start["watch"] = generation_payload(generation, request)
            elif _rerunnable(generation):
                start["prefill"] = generation.request
            if (index := request.GET.get("guide", "")).isdigit():
                files = output_files(generation, request) if generation.status == "succeeded" else []
                if int(index) < len(files):
                    start["guide"] = {"url": files[int(index)]["url"], "key": files[int(index)]["key"],
                                      "name": f"Output {int(index) + 1}"}
    if (lora_id := request.GET.get("lora", "").strip()) and "prefill" not in start and "watch" not in start:
        start.update(_lora_start(request, workspace, lora_id))
    recent = list(_workspace_generations(request)[:RECENT_IN_STUDIO])
    config = {
        "urls": {
            "generations": "/api/v1/generations",
            "models": "/api/v1/models",
            "loras": "/api/v1/loras",
            "suggest": "/api/v1/suggest",
            "stream": "/ws/generations/",
            "detail": reverse("generation-detail", args=["00000000-0000-0000-0000-000000000000"]),
            "studio": reverse("studio"),
            "recent": reverse("studio-recent"),
        },
        "aspect_ratios": list(STUDIO_ASPECT_RATIOS),
        "schedulers": list(SCHEDULERS),
        "can_generate": _can_generate(request),
        "default_model": _studio_default_model(workspace),
        "default_model_set": _workspace_default_set(workspace),
        **start,
    }
    return render(request, "studio/studio.html", {
        "config": config,
        "can_generate": config["can_generate"],
        "aspect_ratios": [(ratio, ASPECT_RATIOS[ratio]) for ratio in STUDIO_ASPECT_RATIOS],
        "schedulers": SCHEDULERS,
        "recent": _tiles(request, recent),
        **_catalog_state(workspace),
    })


@login_required
def studio_recent(request: HttpRequest) -> HttpResponse:
    """The studio's Recent strip alone, for the page to refresh after a run finishes."""
    recent = list(_workspace_generations(request)[:RECENT_IN_STUDIO])
    return render(request, "studio/_recent.html", {"recent": _tiles(request, recent)})


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    generations = _workspace_generations(request)
    used_models = set(generations.order_by().values_list("model_ref", flat=True).distinct()) - {""}
    recent_lora_refs = generations.order_by("-created_at").values_list("lora_refs", flat=True)[:2000]
    used_loras = {str(ref) for refs in recent_lora_refs if isinstance(refs, list) for ref in refs}
    model_names = _names(visible_models(workspace), used_models)
    lora_names = _names(visible_loras(workspace), used_loras)
    form = GalleryFilterForm(
        request.GET or None,
        models=sorted(model_names.items(), key=lambda item: item[1].lower()),
        loras=sorted(lora_names.items(), key=lambda item: item[1].lower()),
    )
    params = form.selector_params()
    paginator = Paginator(filter_generations(generations, params), GALLERY_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "studio/gallery.html", {
        "form": form,
        "page": page,
        "tiles": _tiles(request, list(page.object_list)),
        "filtered": bool(params),
        "has_any": generations.exists(),
        "page_query": query.urlencode(),
    })


@login_required
def generation_detail(request: HttpRequest, generation_id: str) -> HttpResponse:
    generation = get_generation_for_workspace(workspace=_workspace(request), id=generation_id)
    record = dict(generation.request or {})
    model_names = _names(visible_models(_workspace(request)), {generation.model_ref} - {""})
    lora_names = _names(visible_loras(_workspace(request)), {str(ref) for ref in generation.lora_refs or []})
    loras = [{**lora, "name": lora_names.get(str(lora.get("id")), str(lora.get("id")))}
             for lora in record.get("loras") or [] if isinstance(lora, dict)]
    nodes = []
    total_seconds = sum(float(state.get("seconds") or 0) for state in (generation.node_states or {}).values())
    for node_id, state in (generation.node_states or {}).items():
        seconds = float(state.get("seconds") or 0)
        status = state.get("status", "")
        if status == "running" and generation.is_terminal:  # the job ended while this node ran
            status = "failed" if generation.status == "failed" else "stopped"
        nodes.append({"id": node_id, **state, "status": status, "seconds": seconds,
                      "share": round(100 * seconds / total_seconds) if total_seconds else 0})
    reproducibility = generation.reproducibility or {}
    payload = generation_payload(generation, request)
    return render(request, "studio/generation_detail.html", {
        "generation": generation,
        "files": payload["outputs"],
        "record": record,
        "model_name": model_names.get(generation.model_ref, generation.model_ref),
        "loras": loras,
        "detailers": record.get("detailers") or {},
        "nodes": nodes,
        "total_seconds": total_seconds,
        "repro": reproducibility,
        "repro_nodes": reproducibility.get("nodes") or {},
        "repro_models": _model_records(reproducibility.get("models")),
        "request_json": json.dumps(record, indent=2, sort_keys=True),
        "repro_json": json.dumps(reproducibility, indent=2, sort_keys=True),
        "deliveries": list(generation.webhook_deliveries.filter(workspace=_workspace(request))
                           .order_by("-created_at")[:DELIVERIES_ON_DETAIL]),
        "rerunnable": _rerunnable(generation) and _can_generate(request),
        "can_generate": _can_generate(request),
        "config": {
            "urls": {"generations": "/api/v1/generations", "studio": reverse("studio")},
            "generation": {"id": str(generation.pk), "request": record, "source": generation.source},
            "can_generate": _can_generate(request),
        },
    })


@login_required
@require_POST
def workspace_default_model_view(request: HttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    if Scope.ADMIN not in request.membership.scopes:  # type: ignore[attr-defined]
        raise PermissionDenied("Only owners and admins can choose the workspace's default model.")
    form = DefaultModelForm(request.POST, workspace=workspace)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("model", ["Pick a model from the list."])))
        return redirect("workspace-settings")
    model = form.chosen()
    workspace.default_model = model
    workspace.save(update_fields=["default_model"])
    messages.success(request, f"New generations in {workspace.name} use {model.name} unless they name another model."
                     if model else f"Kizy picks a featured installed model for {workspace.name} again.")
    return redirect("workspace-settings")
