"""Browser pages: trainings list, upload, the goal/captions/checks page, and one training's page.

Thin: forms in, the same services as the API out. Every page works without JavaScript (plain forms);
``static/js/training.js`` adds drag and drop with upload progress, live checks, the loss curve and
live progress over the websocket.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from accounts.models import Scope
from accounts.workspace_auth import auth_for_membership
from gpu_workers.training.presets import (
    FAMILY_LABELS,
    PARAMS,
    ParamError,
    describe_presets,
    preset_for,
    resolve_params,
)

from . import access, services
from .catalog import trainable_models
from .models import GoalType
from .payloads import checkpoints_payload, item_payload, lora_payload, training_payload
from .plan import training_plan, wants_quick_preset
from .selectors import dataset_checks
from .uploads import UploadRefused, too_many_files


def _auth(request: HttpRequest, scope: str = Scope.READ) -> Any:
    membership = request.membership  # type: ignore[attr-defined]
    if scope not in membership.scopes:
        raise PermissionDenied(f"Your role in this workspace does not allow this (it needs '{scope}').")
    return auth_for_membership(membership)


def _message(exc: ValidationError) -> str:
    detail = exc.detail

    def flatten(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [
                f"{key}: {m}" if key not in ("non_field_errors", "dataset") else m
                for key, inner in value.items()
                for m in flatten(inner)
            ]
        if isinstance(value, list):
            return [m for inner in value for m in flatten(inner)]
        return [str(value)]

    return " ".join(flatten(detail))


def _files(request: HttpRequest) -> list[tuple[str, Any]]:
    return [(f.name, f) for f in request.FILES.getlist("images")]


View = Callable[..., HttpResponse]


def refuse_too_many_files(on_refusal: Callable[..., HttpResponse]) -> Callable[[View], View]:
    """Answer an upload with more loose files than Django parses like any other refused upload.

    Django raises ``TooManyFilesSent`` while it reads the form, which the CSRF middleware does before
    the view runs (a bare "Bad Request" page). So the form is read here first, and the CSRF check
    runs right after, inside (``csrf_protect``): nothing is done for a request that fails it.
    """

    def decorate(view: View) -> View:
        protected = csrf_protect(view)

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                try:
                    request.POST  # noqa: B018 - reads the form, which is what may raise
                except TooManyFilesSent:
                    return on_refusal(request, too_many_files(), *args, **kwargs)
            return protected(request, *args, **kwargs)

        return csrf_exempt(wrapped)

    return decorate


def _new_page_refused(request: HttpRequest, exc: UploadRefused) -> HttpResponse:
    return render(request, "training/new.html", {"problems": exc.problems, "refused": str(exc)}, status=400)


def _add_images_refused(request: HttpRequest, exc: UploadRefused, dataset_id: str) -> HttpResponse:
    messages.error(request, str(exc))
    for problem in exc.problems[1:6]:
        messages.error(request, f"{problem.file}: {problem.message}")
    return redirect("training-dataset", dataset_id=dataset_id)


@login_required
def training_list(request: HttpRequest) -> HttpResponse:
    auth = _auth(request)
    return render(
        request,
        "training/list.html",
        {
            "trainings": access.trainings_for_workspace(workspace=auth.workspace)[:100],
            "datasets": access.datasets_for_workspace(workspace=auth.workspace).prefetch_related("items")[
                :50
            ],
            "can_train": Scope.TRAIN in auth.scopes,
        },
    )


@login_required
@refuse_too_many_files(_new_page_refused)
def training_new(request: HttpRequest) -> HttpResponse:
    """Step 1: the pictures. (JavaScript uploads them to the API with progress; this is the fallback.)"""
    if request.method == "POST":
        auth = _auth(request, Scope.TRAIN)
        try:
            change = services.dataset_create(
                auth=auth, files=_files(request), name=request.POST.get("name", "")
            )
        except UploadRefused as exc:
            return _new_page_refused(request, exc)
        for notice in change.notices:
            messages.info(request, notice)
        return redirect("training-dataset", dataset_id=change.dataset.pk)
    _auth(request, Scope.TRAIN)
    return render(request, "training/new.html", {})


def _params_from_form(request: HttpRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for param in PARAMS:
        if param.kind == "bool":
            value = request.POST.get(param.name)
            if value in ("true", "false"):
                params[param.name] = value == "true"
        elif (value := request.POST.get(param.name, "").strip()) != "":
            params[param.name] = value
    return params


@login_required
def dataset_page(request: HttpRequest, dataset_id: str) -> HttpResponse:
    """Step 2: the goal, the captions, the checks, the settings; "Start training" submits them all."""
    auth = _auth(request)
    dataset = access.get_dataset_for_workspace(workspace=auth.workspace, id=dataset_id)
    models = trainable_models(workspace=auth.workspace)
    chosen = request.POST.get("model") or request.GET.get("model") or (str(models[0].pk) if models else "")
    model = next((m for m in models if str(m.pk) == chosen), models[0] if models else None)
    errors: list[str] = []
    if request.method == "POST":
        auth = _auth(request, Scope.TRAIN)
        captions = {
            key.removeprefix("caption-"): value
            for key, value in request.POST.items()
            if key.startswith("caption-")
        }
        # Only captions the person changed count as edits (the others follow the new description).
        before = {str(item.pk): item.caption for item in dataset.items.all()}
        edited = {item_id: text for item_id, text in captions.items() if before.get(item_id, text) != text}
        try:
            dataset = services.dataset_update(
                dataset=dataset,
                name=request.POST.get("name", dataset.name),
                description=request.POST.get("description", dataset.description),
                goal_type=request.POST.get("goal_type", dataset.goal_type),
                trigger_word=request.POST.get("trigger_word", dataset.trigger_word),
            )
            if edited:
                services.dataset_set_captions(dataset=dataset, captions=edited)
            if request.POST.get("action") == "train":
                if model is None:
                    raise ValidationError({"model": "No base model is installed to train on."})
                submitted = services.training_submit(
                    auth=auth,
                    dataset=dataset,
                    model_id=str(model.pk),
                    name=dataset.name,
                    params=_params_from_form(request),
                )
                return redirect("training-detail", training_id=submitted.job.pk)
            messages.success(request, "Saved.")
            return redirect(f"{request.path}?model={model.pk}" if model else request.path)
        except ValidationError as exc:
            errors.append(_message(exc))
    family = model.family if model else "sd15"
    quick = wants_quick_preset(model)
    preset = preset_for(family, quick=quick)
    try:
        params = resolve_params(
            family, _params_from_form(request) if request.method == "POST" else {}, quick=quick
        )
    except ParamError:
        params = dict(preset)
    checks = dataset_checks(dataset=dataset, family=family, params=params)
    plan = training_plan(workspace=auth.workspace, model=model, params=params, quick=quick)
    return render(
        request,
        "training/dataset.html",
        {
            "dataset": dataset,
            "items": [item_payload(item, absolute_urls=False) for item in dataset.items.all()],
            "flagged": {
                item_id
                for check in checks["checks"]
                if check["level"] in ("warning", "error")
                for item_id in check["items"]
            },
            "models": [(m, wants_quick_preset(m)) for m in models],
            "model": model,
            "plan": plan,
            "family_label": FAMILY_LABELS.get(family, family),
            "checks": checks,
            "params": [
                {
                    **p.describe(),
                    "preset": preset.get(p.name),
                    "entered": request.POST.get(p.name, "") if request.method == "POST" else "",
                }
                for p in PARAMS
            ],
            "presets": describe_presets(),
            "goal_types": GoalType.choices,
            "errors": errors,
            "can_train": Scope.TRAIN in request.membership.scopes,  # type: ignore[attr-defined]
            "form": request.POST if request.method == "POST" else None,
        },
        status=400 if errors else 200,
    )


@login_required
@require_POST
@refuse_too_many_files(_add_images_refused)
def dataset_add_images(request: HttpRequest, dataset_id: str) -> HttpResponse:
    auth = _auth(request, Scope.TRAIN)
    dataset = access.get_dataset_for_workspace(workspace=auth.workspace, id=dataset_id)
    try:
        change = services.dataset_add_files(dataset=dataset, files=_files(request))
    except UploadRefused as exc:
        return _add_images_refused(request, exc, dataset_id=str(dataset.pk))
    messages.success(request, f"Added {change.added} image(s).")
    for notice in change.notices:
        messages.info(request, notice)
    return redirect("training-dataset", dataset_id=dataset.pk)


@login_required
@require_POST
def dataset_remove_image(request: HttpRequest, dataset_id: str, item_id: str) -> HttpResponse:
    auth = _auth(request, Scope.TRAIN)
    dataset = access.get_dataset_for_workspace(workspace=auth.workspace, id=dataset_id)
    item = access.get_dataset_item_for_workspace(workspace=auth.workspace, dataset=dataset, id=item_id)
    services.dataset_item_delete(item=item)
    messages.success(request, f"Removed {item.source_name}.")
    return redirect("training-dataset", dataset_id=dataset.pk)


@login_required
def training_detail(request: HttpRequest, training_id: str) -> HttpResponse:
    auth = _auth(request)
    job = access.get_training_for_workspace(workspace=auth.workspace, id=training_id)
    return render(
        request,
        "training/detail.html",
        {
            "job": job,
            "payload": training_payload(job, absolute_urls=False),
            "checkpoints": list(reversed(checkpoints_payload(job, absolute_urls=False))),
            "lora": lora_payload(job, absolute_urls=False) if job.status == "succeeded" else None,
            "family_label": FAMILY_LABELS.get(job.family, job.family),
            "can_train": Scope.TRAIN in auth.scopes,
        },
    )


@login_required
@require_POST
def training_cancel(request: HttpRequest, training_id: str) -> HttpResponse:
    auth = _auth(request, Scope.TRAIN)
    job = access.get_training_for_workspace(workspace=auth.workspace, id=training_id)
    services.training_cancel(job=job)
    messages.info(request, "Canceling: the training stops before its next step.")
    return redirect("training-detail", training_id=job.pk)
