"""Browser pages for workspaces, members, invitations and API keys. Thin: forms in, services out."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import access, services
from .forms import ApiKeyForm, InvitationForm, RoleForm, WorkspaceForm
from .middleware import SESSION_KEY, resolve_active_membership
from .models import Role, Scope


def _require_scope(request: HttpRequest, scope: str) -> None:
    if scope not in request.membership.scopes:  # type: ignore[attr-defined]
        raise PermissionDenied(f"Your role in this workspace does not allow this (it needs '{scope}').")


def _error_text(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("studio" if _has_route("studio") else "workspace-settings")
    return redirect("account_login")


def _has_route(name: str) -> bool:
    try:
        reverse(name)
    except Exception:  # noqa: BLE001
        return False
    return True


@login_required
@require_POST
def workspace_switch(request: HttpRequest) -> HttpResponse:
    membership = access.get_membership(user=request.user, workspace_id=request.POST.get("workspace"))
    request.session[SESSION_KEY] = str(membership.workspace_id)
    messages.success(request, f"Switched to {membership.workspace.name}.")
    next_url = request.POST.get("next") or "/"
    return redirect(next_url if next_url.startswith("/") and not next_url.startswith("//") else "/")


@login_required
def workspace_create_view(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.workspace_create(name=form.cleaned_data["name"], owner=request.user)
        request.session[SESSION_KEY] = str(workspace.pk)
        messages.success(request, f"Created {workspace.name}.")
        return redirect("workspace-settings")
    return render(request, "accounts/workspace_create.html", {"form": form})


@login_required
def workspace_settings(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    can_admin = Scope.ADMIN in request.membership.scopes  # type: ignore[attr-defined]
    return render(
        request,
        "accounts/workspace_settings.html",
        {
            "members": workspace.memberships.select_related("user").order_by("joined_at"),
            "invitations": workspace.invitations.filter(accepted_at__isnull=True),
            "invite_form": InvitationForm(),
            "role_form": RoleForm(),
            "can_admin": can_admin,
            "is_owner": request.membership.role == Role.OWNER,  # type: ignore[attr-defined]
            "rename_form": WorkspaceForm(initial={"name": workspace.name}),
        },
    )


@login_required
@require_POST
def workspace_rename_view(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    old_name = workspace.name
    try:
        services.workspace_rename(
            workspace=workspace, name=request.POST.get("name", ""), acting=request.membership  # type: ignore[attr-defined]
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
        return redirect("workspace-settings")
    messages.success(request, f"Renamed {old_name} to {workspace.name}.")
    return redirect("workspace-settings")


@login_required
@require_POST
def workspace_delete_view(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    name = workspace.name
    try:
        services.workspace_delete(
            workspace=workspace, confirm_name=request.POST.get("confirm_name", ""),
            acting=request.membership,  # type: ignore[attr-defined]
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
        return redirect("workspace-settings")
    request.session.pop(SESSION_KEY, None)
    landing = resolve_active_membership(request)  # the personal workspace, or the next one joined
    where = f" You are now in {landing.workspace.name}." if landing else ""
    messages.success(request, f"Deleted {name} and everything in it.{where}")
    return redirect("workspace-settings")


@login_required
@require_POST
def invitation_create_view(request: HttpRequest) -> HttpResponse:
    _require_scope(request, Scope.ADMIN)
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and role.")
        return redirect("workspace-settings")
    try:
        invitation = services.invitation_create(
            workspace=request.workspace, email=form.cleaned_data["email"],  # type: ignore[attr-defined]
            role=form.cleaned_data["role"], invited_by=request.user,
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
        return redirect("workspace-settings")
    from .emails import send_invitation

    send_invitation(request, invitation)
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("workspace-settings")


@login_required
@require_POST
def invitation_revoke_view(request: HttpRequest, invitation_id: str) -> HttpResponse:
    _require_scope(request, Scope.ADMIN)
    invitation = access.get_invitation_for_workspace(workspace=request.workspace, id=invitation_id)  # type: ignore[attr-defined]
    services.invitation_revoke(invitation=invitation)
    messages.success(request, f"Invitation for {invitation.email} withdrawn.")
    return redirect("workspace-settings")


def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    invitation = access.get_open_invitation_by_token(token=token)
    page = {"invitation": invitation, "expired": services.invitation_is_expired(invitation),
            "expires_at": services.invitation_expires_at(invitation)}
    if not request.user.is_authenticated:
        return render(request, "accounts/invitation.html", page)
    if request.method == "POST":
        try:
            membership = services.invitation_accept(invitation=invitation, user=request.user)
        except (ValidationError, PermissionDenied) as exc:
            messages.error(request, _error_text(exc))
            return redirect("home")
        request.session[SESSION_KEY] = str(membership.workspace_id)
        messages.success(request, f"You joined {membership.workspace.name} as {membership.get_role_display()}.")
        return redirect("workspace-settings")
    return render(request, "accounts/invitation.html", page)


@login_required
@require_POST
def member_role_view(request: HttpRequest, member_id: int) -> HttpResponse:
    _require_scope(request, Scope.ADMIN)
    membership = access.get_member_for_workspace(workspace=request.workspace, id=member_id)  # type: ignore[attr-defined]
    form = RoleForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose a valid role.")
        services.membership_change_role(
            membership=membership, role=form.cleaned_data["role"], acting=request.membership  # type: ignore[attr-defined]
        )
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display()}.")
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
    return redirect("workspace-settings")


@login_required
@require_POST
def member_remove_view(request: HttpRequest, member_id: int) -> HttpResponse:
    membership = access.get_member_for_workspace(workspace=request.workspace, id=member_id)  # type: ignore[attr-defined]
    leaving = membership.pk == request.membership.pk  # type: ignore[attr-defined]
    try:
        services.membership_remove(membership=membership, acting=request.membership)  # type: ignore[attr-defined]
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
        return redirect("workspace-settings")
    if leaving:
        request.session.pop(SESSION_KEY, None)
        messages.success(request, f"You left {membership.workspace.name}.")
        return redirect("home")
    messages.success(request, f"Removed {membership.user.email}.")
    return redirect("workspace-settings")


@login_required
def api_keys_view(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    can_admin = Scope.ADMIN in request.membership.scopes  # type: ignore[attr-defined]
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST":
        _require_scope(request, Scope.ADMIN)
        if form.is_valid():
            try:
                created = services.api_key_create(
                    workspace=workspace, created_by=request.user, name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"], allowed_scopes=request.membership.scopes,  # type: ignore[attr-defined]
                )
                new_key = created.secret  # rendered once, in this response only
                form = ApiKeyForm()
            except (ValidationError, PermissionDenied) as exc:
                messages.error(request, _error_text(exc))
    response = render(
        request,
        "accounts/api_keys.html",
        {"keys": workspace.api_keys.select_related("created_by"), "form": form, "new_key": new_key,
         "can_admin": can_admin},
    )
    if new_key:  # the page shows the secret once: neither the browser's cache nor a proxy may keep it
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def api_key_revoke_view(request: HttpRequest, key_id: str) -> HttpResponse:
    _require_scope(request, Scope.ADMIN)
    api_key = access.get_api_key_for_workspace(workspace=request.workspace, id=key_id)  # type: ignore[attr-defined]
    services.api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked {api_key.name}.")
    return redirect("api-keys")
