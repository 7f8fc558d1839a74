"""DRF authentication: `Authorization: Bearer <key>` or the browser session (with CSRF)."""
from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, get_authorization_header
from rest_framework.request import Request

from .services import api_key_touch
from .workspace_auth import KeyRejected, WorkspaceAuth, auth_for_key_string, auth_for_membership


class ApiKeyAuthentication:
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, WorkspaceAuth] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() not in (self.keyword, b"token") or len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.")
        try:
            auth = auth_for_key_string(header[1].decode("ascii", errors="replace"))
        except KeyRejected as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        assert auth.api_key is not None
        api_key_touch(api_key=auth.api_key)
        return (auth.user, auth)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="kizy"'


class WorkspaceSessionAuthentication(SessionAuthentication):
    """The browser's session, in the workspace chosen with the switcher (see ActiveWorkspaceMiddleware)."""

    def authenticate(self, request: Request) -> tuple[Any, WorkspaceAuth] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        membership = getattr(request._request, "membership", None)
        if membership is None:
            return None
        return (result[0], auth_for_membership(membership))
