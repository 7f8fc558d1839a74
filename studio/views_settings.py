"""Settings → Webhooks: the workspace's endpoints, its signing secret and the delivery log."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from accounts.models import Scope

from . import webhooks
from .models import WebhookDelivery
from .services import WEBHOOK_EVENTS


class EndpointForm(forms.Form):
    url = forms.URLField(label="Endpoint URL", max_length=1000, assume_scheme="https")
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(choices=[(e, e) for e in WEBHOOK_EVENTS], required=False,
                                       widget=forms.CheckboxSelectMultiple, help_text="None ticked means all events.")


def _require_admin(request: HttpRequest) -> None:
    if Scope.ADMIN not in request.membership.scopes:  # type: ignore[attr-defined]
        raise PermissionDenied("Only owners and admins can change webhooks.")


@login_required
def webhooks_view(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    can_admin = Scope.ADMIN in request.membership.scopes  # type: ignore[attr-defined]
    form = EndpointForm(request.POST or None)
    if request.method == "POST":
        _require_admin(request)
        if form.is_valid():
            try:
                webhooks.endpoint_create(workspace=workspace, url=form.cleaned_data["url"],
                                         events=form.cleaned_data["events"],
                                         description=form.cleaned_data["description"])
                messages.success(request, "Webhook endpoint added.")
                return redirect("webhooks-settings")
            except ValidationError as exc:
                detail = exc.detail if isinstance(exc.detail, dict) else {"url": exc.detail}
                for field, errors in detail.items():
                    form.add_error("url" if field == "webhook" else field if field in form.fields else None,
                                   errors if isinstance(errors, list) else [errors])
    return render(request, "studio/webhooks_settings.html", {
        "form": form,
        "can_admin": can_admin,
        "endpoints": workspace.webhook_endpoints.all(),
        "secret": webhooks.workspace_secret(workspace) if can_admin else None,
        "deliveries": WebhookDelivery.objects.filter(workspace=workspace).order_by("-created_at")[:50],
    })


@login_required
@require_POST
def webhook_delete_view(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    _require_admin(request)
    endpoint = webhooks.get_endpoint_for_workspace(workspace=request.workspace, id=endpoint_id)  # type: ignore[attr-defined]
    webhooks.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Removed {endpoint.url}.")
    return redirect("webhooks-settings")


@login_required
@require_POST
def webhook_secret_rotate_view(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    webhooks.rotate_secret(request.workspace)  # type: ignore[attr-defined]
    messages.success(request, "New signing secret created; update your receivers.")
    return redirect("webhooks-settings")
