"""DRF throttle backed by the atomic Redis counter in ratelimit.py (per API key, or per session user)."""
from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from . import ratelimit
from .workspace_auth import WorkspaceAuth


class PerKeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        auth = request.auth
        if not isinstance(auth, WorkspaceAuth):
            return True
        decision = ratelimit.hit(auth.actor)
        self._retry_after = decision.retry_after
        request._request.ratelimit = decision  # headers added by the exception handler / middleware
        return decision.allowed

    def wait(self) -> float | None:
        return float(getattr(self, "_retry_after", 1))
