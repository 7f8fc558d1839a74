"""Rate limits (K3): the limit holds under a concurrent burst, and the 429 says when to come back."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from rest_framework.test import APIClient

from accounts import ratelimit
from tests.accounts.helpers import bearer, forget_rate_limit

LIMIT = 10
BURST = 30


def _burst(headers: dict[str, str], count: int) -> list:
    start = threading.Barrier(count)

    def one_request(_: int):
        client = APIClient()
        try:
            start.wait(timeout=30)
            return client.get("/api/v1/me", **headers)
        finally:
            connections.close_all()  # each thread opened its own database connection

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one_request, range(count)))


@pytest.fixture
def user_buckets(owner) -> Iterator[None]:
    """Key buckets are new with every key; a user's bucket is not (ids repeat between runs)."""
    forget_rate_limit(f"user:{owner.user.pk}")
    yield
    forget_rate_limit(f"user:{owner.user.pk}")


@pytest.mark.django_db(transaction=True)  # the request threads must see the persona rows
def test_a_concurrent_burst_gets_exactly_the_limit(settings, owner) -> None:
    settings.KIZY_API_RATE_LIMIT = LIMIT
    settings.KIZY_API_RATE_WINDOW = 60
    responses = _burst(bearer(owner.key), BURST)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * LIMIT + [429] * (BURST - LIMIT)
    for response in responses:
        if response.status_code == 429:
            retry_after = response["Retry-After"]
            assert retry_after.isdigit() and 0 < int(retry_after) <= 60
            assert response.json()["detail"] == f"Rate limit reached; retry in {retry_after} s."
            assert response.json()["code"] == "throttled"


@pytest.mark.django_db
def test_the_limit_is_per_key_and_retry_after_is_truthful(settings, owner, member) -> None:
    settings.KIZY_API_RATE_LIMIT = 2
    settings.KIZY_API_RATE_WINDOW = 1
    client = owner.client()
    assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get("/api/v1/me")
    assert refused.status_code == 429
    # Another key of the same workspace has its own budget.
    assert member.client().get("/api/v1/me").status_code == 200
    time.sleep(int(refused["Retry-After"]) + 0.2)
    assert client.get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_browser_sessions_are_limited_per_user(settings, owner, user_buckets) -> None:
    settings.KIZY_API_RATE_LIMIT = 3
    client = owner.session_client()
    assert [client.get("/api/v1/me").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert int(client.get("/api/v1/me")["Retry-After"]) > 0


@pytest.mark.django_db
def test_unauthenticated_requests_do_not_spend_anyones_budget(settings, owner) -> None:
    settings.KIZY_API_RATE_LIMIT = 1
    for _ in range(3):
        assert APIClient().get("/api/v1/me").status_code == 401
    assert owner.client().get("/api/v1/me").status_code == 200


def test_the_counter_is_atomic_in_redis() -> None:
    bucket = f"test:{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=20) as pool:
        decisions = list(pool.map(lambda _: ratelimit.hit(bucket, limit=7, window=60), range(40)))
    assert sum(decision.allowed for decision in decisions) == 7
    assert sorted(decision.remaining for decision in decisions if decision.allowed) == list(range(7))
    forget_rate_limit(bucket)


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again once the socket is: nothing listens there


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["key", "session"])
def test_with_redis_down_the_api_answers_a_json_503_naming_it(owner, settings, auth) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    client = owner.client() if auth == "key" else owner.session_client()
    response = client.get("/api/v1/me")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert "cannot reach Redis" in body["detail"]
    assert int(response["Retry-After"]) > 0
