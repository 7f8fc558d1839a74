"""Websocket authentication: the browser session, or an API key in the `Authorization` header or
in the `token` query parameter (browsers cannot set headers on websockets). Sets `scope["kizy_auth"]`."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from .models import Membership
from .workspace_auth import KeyRejected, WorkspaceAuth, auth_for_key_string, auth_for_membership

SESSION_KEY = "active_workspace_id"


@database_sync_to_async
def _auth_from_key(raw: str) -> WorkspaceAuth | None:
    try:
        return auth_for_key_string(raw)
    except KeyRejected:
        return None


@database_sync_to_async
def _auth_from_session(user: Any, session: Any) -> WorkspaceAuth | None:
    if user is None or not user.is_authenticated:
        return None
    chosen = session.get(SESSION_KEY) if session is not None else None
    memberships = Membership.objects.select_related("workspace", "user").filter(user=user)
    membership = (memberships.filter(workspace_id=chosen).first() if chosen else None) or memberships.first()
    return auth_for_membership(membership) if membership else None


class _KizyAuth(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization", b"").decode("latin-1")
        token = raw.split(" ", 1)[1] if raw.lower().startswith("bearer ") else ""
        if not token:
            token = (parse_qs(scope.get("query_string", b"").decode()).get("token") or [""])[0]
        if token:
            scope["kizy_auth"] = await _auth_from_key(token)
        else:
            scope["kizy_auth"] = await _auth_from_session(scope.get("user"), scope.get("session"))
        return await super().__call__(scope, receive, send)


def WorkspaceWebsocketAuthMiddleware(inner: Any) -> Any:  # noqa: N802 - mirrors AuthMiddlewareStack
    return AuthMiddlewareStack(_KizyAuth(inner))
