"""DRF throttle backed by the atomic Redis counter in ratelimit.py (per API key, or per session user)."""
from __future__ import annotations

import logging
from typing import Any

import redis
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from . import ratelimit
from .exceptions import ServiceUnavailable
from .workspace_auth import WorkspaceAuth

logger = logging.getLogger(__name__)


class PerKeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        auth = request.auth
        if not isinstance(auth, WorkspaceAuth):
            return True
        try:
            decision = ratelimit.hit(auth.actor)
        except redis.RedisError as exc:
            # Failing closed: without the counter a leaked key could not be held to its limit.
            logger.error("rate limiter unavailable: %s", exc)
            raise ServiceUnavailable(
                "The rate limiter is unavailable: Kizy cannot reach Redis. Retry in a moment; "
                "if it persists, the operator should check REDIS_URL and the Redis server."
            ) from exc
        self._retry_after = decision.retry_after
        request._request.ratelimit = decision  # headers added by the exception handler / middleware
        return decision.allowed

    def wait(self) -> float | None:
        return float(getattr(self, "_retry_after", 1))
