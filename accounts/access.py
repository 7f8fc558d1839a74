"""The only way to fetch workspace-owned rows of this app. Other workspaces' rows are 404."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404

from .models import ApiKey, Invitation, Membership, User, Workspace


def get_membership(*, user: User, workspace_id: object) -> Membership:
    try:
        return Membership.objects.select_related("workspace").get(user=user, workspace_id=workspace_id)
    except (Membership.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise Http404("No such workspace.") from exc


def memberships_for_user(*, user: User) -> list[Membership]:
    return list(Membership.objects.select_related("workspace").filter(user=user).order_by("workspace__name"))


def get_api_key_for_workspace(*, workspace: Workspace, id: object) -> ApiKey:
    try:
        return ApiKey.objects.get(workspace=workspace, id=id)
    except (ApiKey.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise Http404("No such API key in this workspace.") from exc


def get_member_for_workspace(*, workspace: Workspace, id: object) -> Membership:
    try:
        return Membership.objects.select_related("user").get(workspace=workspace, id=id)
    except (Membership.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise Http404("No such member in this workspace.") from exc


def get_invitation_for_workspace(*, workspace: Workspace, id: object) -> Invitation:
    try:
        return Invitation.objects.get(workspace=workspace, id=id, accepted_at__isnull=True)
    except (Invitation.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise Http404("No such invitation in this workspace.") from exc


def get_open_invitation_by_token(*, token: str) -> Invitation:
    try:
        return Invitation.objects.select_related("workspace").get(token=token, accepted_at__isnull=True)
    except Invitation.DoesNotExist as exc:
        raise Http404("This invitation link is not valid any more.") from exc
