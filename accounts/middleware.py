"""Resolves the browser session's active workspace once per request (the switcher stores it)."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .models import Membership
from .services import user_ensure_personal_workspace

SESSION_KEY = "active_workspace_id"


def resolve_active_membership(request: HttpRequest) -> Membership | None:
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("workspace", "user")
    chosen = request.session.get(SESSION_KEY)
    membership = memberships.filter(user=user, workspace_id=chosen).first() if chosen else None
    if membership is None:
        membership = memberships.filter(user=user).order_by("-workspace__is_personal", "joined_at").first()
    if membership is None:
        user_ensure_personal_workspace(user=user)  # e.g. a superuser made with createsuperuser
        membership = memberships.filter(user=user).first()
    if membership is not None and str(membership.workspace_id) != chosen:
        request.session[SESSION_KEY] = str(membership.workspace_id)
    return membership


class ActiveWorkspaceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = resolve_active_membership(request)
        request.membership = membership  # type: ignore[attr-defined]
        request.workspace = membership.workspace if membership else None  # type: ignore[attr-defined]
        return self.get_response(request)
