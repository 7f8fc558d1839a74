"""Small helpers shared by the foundation tests (tests/accounts, tests/site)."""

from __future__ import annotations

import redis
from django.conf import settings


def typo(key: str, index: int = -12) -> str:
    """The same key with one character changed, as a person might mistype it."""
    replacement = "A" if key[index] != "A" else "B"
    return key[:index] + replacement + key[index + 1 :] if index != -1 else key[:-1] + replacement


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def forget_rate_limit(*buckets: str) -> None:
    """Delete the counters of these buckets (`key:<prefix>`, `user:<id>`), and only these: another
    test run may share the Redis."""
    client = redis_client()
    try:
        client.delete(*(f"kizy:ratelimit:{bucket}" for bucket in buckets))
    finally:
        client.close()
