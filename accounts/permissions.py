"""Permissions declared as data: each view names the scope each HTTP method needs."""
from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .workspace_auth import WorkspaceAuth

DEFAULT_SCOPE_MAP = {
    "GET": "read", "HEAD": "read", "OPTIONS": "read",
    "POST": "admin", "PUT": "admin", "PATCH": "admin", "DELETE": "admin",
}


def required_scope(view: Any, method: str) -> str:
    scope_map = {**DEFAULT_SCOPE_MAP, **getattr(view, "scope_map", {})}
    return scope_map[method]


class HasWorkspaceScope(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        auth = request.auth
        if not isinstance(auth, WorkspaceAuth):
            return False
        needed = required_scope(view, request.method or "GET")
        if needed not in auth.scopes:
            self.message = (
                f"This needs the '{needed}' scope; "
                + ("this key has " + ", ".join(sorted(auth.scopes)) if auth.api_key else "your role does not allow it")
                + "."
            )
            return False
        return True
