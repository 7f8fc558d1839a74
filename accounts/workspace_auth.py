"""What a request may do in which workspace, resolved once per request (browser, API or websocket)."""
from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import cached_property

from .keys import MalformedKey, parse_key
from .models import ROLE_SCOPES, ApiKey, Membership, User, Workspace


class KeyRejected(Exception):
    """An API key that cannot be used; the message says why."""


@dataclass(frozen=True)
class WorkspaceAuth:
    workspace: Workspace
    scopes: frozenset[str]
    user: User | None
    api_key: ApiKey | None = None
    membership: Membership | None = None

    @cached_property
    def actor(self) -> str:
        return f"key:{self.api_key.prefix}" if self.api_key else f"user:{self.user_id}"

    @property
    def user_id(self) -> int | None:
        return self.user.pk if self.user else None


def auth_for_membership(membership: Membership) -> WorkspaceAuth:
    return WorkspaceAuth(
        workspace=membership.workspace, scopes=membership.scopes, user=membership.user, membership=membership
    )


def auth_for_key_string(raw: str) -> WorkspaceAuth:
    """Checksum first (no database work for typos), then prefix lookup and constant-time hash check."""
    import hmac

    try:
        parsed = parse_key(raw)
    except MalformedKey as exc:
        raise KeyRejected(str(exc)) from exc
    api_key = ApiKey.objects.select_related("workspace", "created_by").filter(prefix=parsed.prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, parsed.hashed):
        raise KeyRejected("Unknown API key. Create one in Settings → API keys.")
    if api_key.revoked_at is not None:
        raise KeyRejected("This API key was revoked. Create a new one in Settings → API keys.")
    if api_key.created_by_id is None:
        # The creator's account was deleted (SET_NULL); with nobody to answer for it, the key is dead.
        raise KeyRejected("The account that created this API key no longer exists; create a new key.")
    # A key never does more than the person who made it may do today.
    membership = Membership.objects.filter(workspace=api_key.workspace, user_id=api_key.created_by_id).first()
    if membership is None:
        raise KeyRejected("The member who created this API key has left the workspace; create a new key.")
    scopes = frozenset(api_key.scopes) & ROLE_SCOPES[membership.role]
    return WorkspaceAuth(
        workspace=api_key.workspace, scopes=scopes, user=api_key.created_by, api_key=api_key, membership=membership
    )
