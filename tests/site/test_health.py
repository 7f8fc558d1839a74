"""`GET /healthz`: 200 when the database, the broker and storage answer; 503 naming what failed."""

from __future__ import annotations

import socket

import pytest
from django.core.files.storage import default_storage

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


def test_healthz_is_200_when_everything_answers(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
    }


def test_healthz_is_503_naming_the_broker_when_redis_is_down(client, settings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["status"] == "error"
    assert "ConnectionError" in body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


def test_healthz_is_503_naming_storage_when_it_cannot_write(client, settings, tmp_path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the media folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "kizy_site.storage.PrivateFileSystemStorage",
            "OPTIONS": {"location": str(blocked)},
        },
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["storage"]


def test_healthz_leaves_no_probe_files_behind(client) -> None:
    assert client.get("/healthz").status_code == 200
    assert default_storage.exists("healthz")  # the probe wrote there…
    assert default_storage.listdir("healthz")[1] == []  # …and removed what it wrote


def test_healthz_is_503_naming_the_database_when_it_cannot_be_queried(client) -> None:
    from django.db import OperationalError, connection

    def unreachable(execute, sql, params, many, context):
        raise OperationalError('connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused')

    with connection.execute_wrapper(unreachable):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    assert body["checks"]["database"]["error"].startswith("OperationalError: connection to server")
    assert body["checks"]["broker"]["status"] == "ok" and body["checks"]["storage"]["status"] == "ok"
