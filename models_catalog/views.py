"""The catalog page for artists: browse what the workspace can use, and bring a LoRA of your own.

Same rules as the API: rows come from selectors/access (public curated + the workspace's own), imports
go through the same services and need the `generate` scope.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Scope

from . import access, selectors
from .downloads import DownloadRefused
from .families import RUNNABLE_FAMILIES, Family
from .models import Intent, Source
from .services import imports
from .services.install import entry_install

PAGE_SIZE = 24
DOWNLOADABLE_SOURCES = (Source.CIVITAI, Source.HUGGINGFACE)


class ImportForm(forms.Form):
    civitai_url = forms.URLField(required=False, label="CivitAI link", max_length=500)
    huggingface_repo = forms.CharField(required=False, label="Hugging Face repo", max_length=200)
    file = forms.FileField(required=False, label=".safetensors file")
    name = forms.CharField(required=False, max_length=200)
    family = forms.ChoiceField(
        required=False,
        choices=[("", "Detect from the weights")] + [(f, Family(f).label) for f in sorted(RUNNABLE_FAMILIES)],
    )
    trigger_words = forms.CharField(required=False, max_length=300, help_text="Comma-separated.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        given = [k for k in ("civitai_url", "huggingface_repo", "file") if data.get(k)]
        if len(given) != 1:
            raise forms.ValidationError("Give one of: a CivitAI link, a Hugging Face repo, or a file.")
        return data


def _can_import(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and Scope.GENERATE in membership.scopes


@login_required
def catalog(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    kind = "models" if request.GET.get("kind") == "models" else "loras"
    params = {key: value for key, value in request.GET.items() if value and key != "page"}
    rows = (selectors.model_list if kind == "models" else selectors.lora_list)(
        workspace=workspace, params=params
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "models_catalog/catalog.html",
        {
            "kind": kind,
            "page": page,
            "params": params,
            "intents": Intent.objects.filter(is_active=True),
            "families": [(f, Family(f).label) for f in sorted(RUNNABLE_FAMILIES)],
            "can_import": _can_import(request),
            "can_install": _can_import(request),
            "installable_sources": DOWNLOADABLE_SOURCES,
            "import_form": ImportForm(),
            "querystring": "&".join(f"{k}={v}" for k, v in params.items()),
        },
    )


@login_required
@require_POST
def catalog_import(request: HttpRequest) -> HttpResponse:
    if not _can_import(request):
        return HttpResponseForbidden("Importing a LoRA needs the generate permission in this workspace.")
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        for error in form.errors.get("__all__", []) or [str(e) for e in form.errors.values()]:
            messages.error(request, error)
        return redirect("catalog")
    data = form.cleaned_data
    common = {"workspace": request.workspace, "user": request.user}  # type: ignore[attr-defined]
    try:
        if data["civitai_url"]:
            result = imports.lora_import_from_civitai(**common, url=data["civitai_url"])
        elif data["huggingface_repo"]:
            result = imports.lora_import_from_huggingface(**common, repo_id=data["huggingface_repo"])
        else:
            words = [w.strip() for w in data["trigger_words"].split(",") if w.strip()]
            result = imports.lora_import_upload(
                **common, upload=data["file"], name=data["name"], family=data["family"], trigger_words=words
            )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect("catalog")
    state = "is downloading" if result.download else "is ready"
    messages.success(request, f"{result.lora.name} {state}. Only this workspace can see it.")
    return redirect(f"{reverse('catalog')}?visibility=private")


@login_required
@require_POST
def catalog_install(request: HttpRequest, kind: str, entry_id: str) -> HttpResponse:
    """The Install button without JavaScript (catalog.js calls the API and shows progress instead)."""
    if not _can_import(request):
        return HttpResponseForbidden("Installing needs the generate permission in this workspace.")
    if kind not in ("models", "loras"):
        raise Http404("No such catalog section.")
    workspace = request.workspace  # type: ignore[attr-defined]
    get = access.get_model_for_workspace if kind == "models" else access.get_lora_for_workspace
    entry = get(workspace=workspace, id=entry_id)
    try:
        _download, queued = entry_install(entry=entry, workspace=workspace, user=request.user)
    except DownloadRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{entry.name} is downloading." if queued else f"{entry.name} is installed.")
    return redirect(f"{reverse('catalog')}?kind={kind}")
