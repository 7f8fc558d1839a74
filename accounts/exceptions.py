"""API exceptions of our own (kept apart from api/errors.py, which imports DRF's views)."""
from __future__ import annotations

from rest_framework import exceptions


class ServiceUnavailable(exceptions.APIException):
    """A service Kizy needs (Redis) is down: a JSON 503 with what failed, instead of an HTML 500."""

    status_code = 503
    default_detail = "A service Kizy needs is unavailable; retry in a moment."
    default_code = "service_unavailable"
