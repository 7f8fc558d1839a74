"""`GET /healthz`: the state of the database, the broker and storage; 503 naming what failed."""
from __future__ import annotations

import time
import uuid

import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _check_storage() -> None:
    name = default_storage.save(f"healthz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name, "rb") as handle:
            if handle.read() != b"ok":
                raise OSError("storage returned different bytes than were written")
    finally:
        default_storage.delete(name)


CHECKS = {"database": _check_database, "broker": _check_broker, "storage": _check_storage}


def healthz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised
            results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    failed = [name for name, result in results.items() if result["status"] != "ok"]
    body = {"status": "ok" if not failed else "error", "failed": failed, "checks": results}
    return JsonResponse(body, status=200 if not failed else 503)
