"""Writes for accounts: workspaces, memberships, invitations, API keys."""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .keys import generate_key
from .models import ROLE_SCOPES, ApiKey, Invitation, Membership, Role, Scope, User, Workspace


@transaction.atomic
def workspace_create(*, name: str, owner: User, personal: bool = False) -> Workspace:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the workspace a name."})
    workspace = Workspace.objects.create(name=name[:100], is_personal=personal, created_by=owner)
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    return workspace


def _require_owner(*, workspace: Workspace, acting: Membership, action: str) -> None:
    if acting.workspace_id != workspace.pk or acting.role != Role.OWNER:
        raise PermissionDenied(f"Only an owner of {workspace.name} can {action} it.")


@transaction.atomic
def workspace_rename(*, workspace: Workspace, name: str, acting: Membership) -> Workspace:
    _require_owner(workspace=workspace, acting=acting, action="rename")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the workspace a name."})
    if len(name) > 100:
        raise ValidationError({"name": f"Use at most 100 characters (this name has {len(name)})."})
    workspace.name = name
    workspace.save(update_fields=["name"])
    return workspace


# Rows a worker may be writing to right now, with the field and values that say so; a workspace is not
# deleted under them.
_JOB_MODELS = (
    ("studio", "Generation", "generation", "status", ("starting", "processing")),
    ("training", "TrainingJob", "training", "status", ("starting", "processing")),
    ("models_catalog", "Download", "model download", "state", ("queued", "downloading", "verifying")),
)


def _jobs_in_flight(workspace: Workspace) -> list[str]:
    from django.apps import apps

    busy = []
    for app_label, model_name, noun, field, active in _JOB_MODELS:
        if not apps.is_installed(app_label):
            continue
        model = apps.get_model(app_label, model_name)
        count = model.objects.filter(workspace=workspace, **{f"{field}__in": active}).count()
        if count:
            busy.append(f"{count} {noun}{'s' if count != 1 else ''}")
    return busy


@transaction.atomic
def workspace_delete(*, workspace: Workspace, confirm_name: str, acting: Membership) -> None:
    """Delete a workspace with everything in it: members, keys, generations, datasets, trainings,
    private LoRAs, webhooks, and (after commit) its files in storage."""
    _require_owner(workspace=workspace, acting=acting, action="delete")
    if workspace.is_personal:
        raise ValidationError("A personal workspace cannot be deleted; it is where you land when you sign in.")
    if (confirm_name or "").strip() != workspace.name:
        raise ValidationError(f"Type the workspace's name, {workspace.name}, exactly to confirm the deletion.")
    list(Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk", flat=True))
    busy = _jobs_in_flight(workspace)
    if busy:
        raise ValidationError(
            f"{workspace.name} has {' and '.join(busy)} running; cancel them or wait for them to finish, "
            "then delete it."
        )
    workspace_id = str(workspace.pk)
    workspace.delete()

    def delete_files() -> None:
        from .tasks import delete_workspace_files

        delete_workspace_files.delay(workspace_id)

    transaction.on_commit(delete_files)


def personal_workspace_name(user: User) -> str:
    return f"{user.display_name}'s workspace"


@transaction.atomic
def user_ensure_personal_workspace(*, user: User) -> Workspace:
    existing = Workspace.objects.filter(memberships__user=user, is_personal=True, created_by=user).first()
    return existing or workspace_create(name=personal_workspace_name(user), owner=user, personal=True)


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in Scope.values]
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s) {', '.join(unknown)}; choose from {', '.join(Scope.values)}."}
        )
    if not chosen:
        raise ValidationError({"scopes": f"Choose at least one scope from {', '.join(Scope.values)}."})
    return chosen


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    secret: str  # the whole key; returned once, never stored


@transaction.atomic
def api_key_create(
    *, workspace: Workspace, created_by: User | None, name: str, scopes: Iterable[str],
    allowed_scopes: frozenset[str] | None = None,
) -> CreatedKey:
    """Create a key. `allowed_scopes` (the creator's own) caps what the key may do."""
    chosen = _clean_scopes(scopes)
    if allowed_scopes is not None and not set(chosen) <= allowed_scopes:
        extra = ", ".join(sorted(set(chosen) - allowed_scopes))
        raise PermissionDenied(f"You cannot grant scopes you do not hold yourself: {extra}.")
    name = (name or "").strip() or "API key"
    generated = generate_key()
    api_key = ApiKey.objects.create(
        workspace=workspace, created_by=created_by, name=name[:100], prefix=generated.prefix,
        key_hash=generated.hashed, scopes=chosen,
    )
    return CreatedKey(api_key=api_key, secret=generated.full)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once a minute per key, so a busy key costs no write per request."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def _owners(workspace: Workspace) -> int:
    """Count owners with the workspace row locked (call inside a transaction): two owners stepping
    down at once must not each see the other as the one who stays."""
    list(Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk", flat=True))
    return workspace.memberships.filter(role=Role.OWNER).count()


INVITATION_VALID_DAYS = 14


def invitation_expires_at(invitation: Invitation) -> datetime:
    return invitation.created_at + timedelta(days=INVITATION_VALID_DAYS)


def invitation_is_expired(invitation: Invitation) -> bool:
    return timezone.now() >= invitation_expires_at(invitation)


@transaction.atomic
def invitation_create(*, workspace: Workspace, email: str, role: str, invited_by: User) -> Invitation:
    email = email.strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": f"Choose a role from {', '.join(Role.values)}."})
    if role == Role.OWNER and not workspace.memberships.filter(user=invited_by, role=Role.OWNER).exists():
        raise PermissionDenied("Only an owner can invite another owner.")
    if workspace.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of this workspace."})
    invitation, _ = Invitation.objects.update_or_create(
        workspace=workspace, email=email, accepted_at=None,
        # Inviting again sends a new link, valid for INVITATION_VALID_DAYS from now.
        defaults={"role": role, "invited_by": invited_by, "token": secrets.token_urlsafe(32),
                  "created_at": timezone.now()},
    )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    if invitation.accepted_at is not None:
        raise ValidationError("This invitation was already used.")
    if invitation_is_expired(invitation):
        expired = invitation_expires_at(invitation)
        raise ValidationError(
            f"This invitation expired on {expired:%b} {expired.day}, {expired.year}; "
            "ask an admin of the workspace to invite you again."
        )
    if invitation.email.lower() != user.email.lower():
        raise PermissionDenied(f"This invitation is for {invitation.email}; sign in with that address to accept it.")
    membership, _ = Membership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    return membership


def invitation_revoke(*, invitation: Invitation) -> None:
    invitation.delete()


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, acting: Membership) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Choose a role from {', '.join(Role.values)}."})
    if Role.OWNER in (role, membership.role) and acting.role != Role.OWNER:
        raise PermissionDenied("Only an owner can grant or take away the owner role.")
    if membership.role == Role.OWNER and role != Role.OWNER and _owners(membership.workspace) == 1:
        raise ValidationError("A workspace needs at least one owner; make someone else owner first.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, acting: Membership) -> None:
    """Remove a member (or leave, when `acting` is the membership itself)."""
    leaving = membership.pk == acting.pk
    if not leaving and Scope.ADMIN not in ROLE_SCOPES[acting.role]:
        raise PermissionDenied("Only owners and admins can remove members.")
    if membership.role == Role.OWNER and acting.role != Role.OWNER:
        raise PermissionDenied("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and _owners(membership.workspace) == 1:
        raise ValidationError("The last owner cannot leave; make someone else owner first, or delete the workspace "
                              "(Settings → Workspace, owners only).")
    if membership.workspace.is_personal and membership.workspace.created_by_id == membership.user_id:
        raise ValidationError("You cannot leave your personal workspace.")
    membership.delete()
