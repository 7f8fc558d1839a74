"""Studio settings shown on the workspace's Settings page (the page itself belongs to accounts/)."""
from __future__ import annotations

from typing import Any

from django import template

from accounts.models import Scope

register = template.Library()


@register.inclusion_tag("studio/_default_model_setting.html", takes_context=True)
def default_model_setting(context: template.Context) -> dict[str, Any]:
    from studio.views import DefaultModelForm

    request = context["request"]
    workspace = request.workspace
    membership = getattr(request, "membership", None)
    form = DefaultModelForm(workspace=workspace, initial={"model": workspace.default_model_id or ""})
    return {
        "form": form,
        "current": form.current_name(),
        "can_admin": membership is not None and Scope.ADMIN in membership.scopes,
        "workspace": workspace,
        "csrf_token": context.get("csrf_token"),
    }
