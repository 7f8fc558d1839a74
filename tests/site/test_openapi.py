"""The published OpenAPI schema is valid, and no request it allows gets a server error (D3).

A bounded fuzz run: a few generated requests per operation, made with the owner persona's key against
the in-process app. Anything but a 5xx passes: 4xx answers to nonsense are the point.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from tests.conftest import Persona

SCHEMA_PATH = "/api/schema/?format=json"
# A few per operation and mode keeps this to seconds; raise it locally to fuzz harder.
EXAMPLES_PER_OPERATION = int(os.environ.get("KIZY_FUZZ_EXAMPLES", "4"))


@pytest.fixture
def in_process_app(db: None) -> Iterator[object]:
    """Django's WSGI app inside the test's transaction. Like Django's test client, keep the handler from
    closing the connection at each request's start and end, which would end that transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(in_process_app: object) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, in_process_app)


@pytest.mark.django_db
def test_the_schema_is_valid_openapi(client) -> None:
    response = client.get(SCHEMA_PATH)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "/api/v1/me" in document["paths"]


def test_no_request_the_schema_allows_gets_a_server_error(api_schema, owner: Persona, monkeypatch, settings) -> None:
    settings.KIZY_API_RATE_LIMIT = 1_000_000  # the limiter is tested elsewhere; here it would only answer 429
    # No worker runs here (tasks are queued on commit, and this test never commits), so anything that
    # waits for a job to finish would wait in vain: ask for no waiting.
    monkeypatch.setattr("studio.compat.openai_api.OPENAI_WAIT_SECONDS", 0)
    server_errors: dict[str, str] = {}  # operation -> the first server error it answered
    answered_ok: set[str] = set()  # operations that answered 2xx at least once: the key really works
    operations = 0
    def fuzz(operation: schemathesis.APIOperation) -> None:
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
            phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        )
        # Valid requests and invalid ones: both must get an answer, never a crash.
        @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
        def call(case: schemathesis.Case) -> None:
            if case.headers:
                case.headers.pop("Prefer", None)  # `Prefer: wait` would hold the request for the job
            response = case.call(headers={"Authorization": f"Bearer {owner.key}"})
            if response.status_code < 300:
                answered_ok.add(operation.label)
            if response.status_code >= 500 and operation.label not in server_errors:
                body = case.body if not isinstance(case.body, bytes) else case.body[:80]
                server_errors[operation.label] = (
                    f"{operation.label} -> {response.status_code} for {case.formatted_path}"
                    f" query={case.query!r} body={str(body)[:200]}"
                )

        call()

    for result in api_schema.get_all_operations():
        operations += 1
        fuzz(result.ok())
    assert operations >= 50, f"only {operations} operations in the schema"
    assert server_errors == {}, "\n".join(server_errors.values())
    assert {"GET /api/v1/me", "GET /api/v1/generations/", "GET /api/v1/nodes"} <= answered_ok


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["42", "[1, 2]", '"a lighthouse"', "null"])
def test_a_json_body_that_is_not_an_object_is_a_4xx(api_schema, owner: Persona, body: str) -> None:
    """Every request body in the schema is an object; anything else must be refused, not crash."""
    client = owner.client()
    client.raise_request_exception = False
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if "application/json" not in (
            (operation.definition.raw.get("requestBody") or {}).get("content", {})
        ):
            continue
        path = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", operation.path)
        response = getattr(client, operation.method.lower())(path, data=body, content_type="application/json")
        if not 400 <= response.status_code < 500:
            failures.append(f"{operation.label} -> {response.status_code}")
    assert failures == []
    answer = client.post("/api/v1/generations", data=body, content_type="application/json")
    assert answer.status_code == 400 and "must be a JSON object" in answer.json()["detail"], answer.content
