"""Per-key rate limiting in Redis: one Lua script per request, so concurrent bursts cannot overshoot."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

# INCR and set the window's expiry atomically; return the count and the seconds left in the window.
_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def hit(bucket: str, *, limit: int | None = None, window: int | None = None) -> RateDecision:
    limit = limit or settings.KIZY_API_RATE_LIMIT
    window = window or settings.KIZY_API_RATE_WINDOW
    client = _client(settings.REDIS_URL)
    count, ttl = client.eval(_SCRIPT, 1, f"kizy:ratelimit:{bucket}", window)
    count, ttl = int(count), max(int(ttl), 1)
    return RateDecision(allowed=count <= limit, limit=limit, remaining=max(limit - count, 0), retry_after=ttl)
