"""Every API error is JSON: `{"detail": <message>, "code": <code>}`, plus field errors when there are some."""
from __future__ import annotations

import logging
from typing import Any

import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ..exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = 5  # seconds


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            inner = _first_message(value)
            return inner if field in ("non_field_errors", "__all__", "detail") else f"{field}: {inner}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, redis.RedisError):  # the broker, a cancel flag or the channel layer, from any view
        logger.error("Redis unavailable during an API request: %s", exc)
        exc = ServiceUnavailable("Kizy cannot reach Redis (its broker) right now; retry in a moment.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        body: dict[str, Any] = {"detail": _first_message(data), "code": "invalid", "errors": data}
    else:
        detail = data.get("detail", data) if isinstance(data, dict) else data
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        body = {"detail": str(detail), "code": str(code)}
    if isinstance(exc, exceptions.Throttled):
        body["detail"] = f"Rate limit reached; retry in {int(exc.wait or 1)} s."
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
    response.data = body
    return response
