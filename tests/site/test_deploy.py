"""The production profile (D1) and the content security policy on responses (D3)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(settings.BASE_DIR)


def production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIZY_", "DJANGO_", "SECURE_"))}
    env.update(
        KIZY_ENV="production",
        KIZY_HOME=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="kizy.example.com",
        DEBUG="false",
        REDIS_URL=settings.REDIS_URL,
        # `check` never connects, so a PostgreSQL URL nobody serves is enough to leave SQLite behind.
        DATABASE_URL=os.environ.get("DATABASE_URL") or "postgres://kizy:kizy@127.0.0.1:1/kizy",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """The production-profile subprocesses, run at once: each spends seconds importing Django."""
    home = tmp_path_factory.mktemp("deploy")
    probe = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS >= 31536000, s.EMAIL_BACKEND.endswith('smtp.EmailBackend'))"
    )
    running = {
        "deploy": manage(production_env(home / "a"), "check", "--deploy", "--fail-level", "WARNING"),
        "wildcard": manage(production_env(home / "b", ALLOWED_HOSTS="*"), "check"),
        "settings": manage(production_env(home / "c"), "shell", "-c", probe),
        "no-redis": manage(production_env(home / "d", REDIS_URL=None), "check"),
        "sqlite": manage(production_env(home / "e", DATABASE_URL=None), "check", "--deploy", "--fail-level", "WARNING"),
    }
    results = {}
    for name, process in running.items():
        output, _ = process.communicate(timeout=180)
        results[name] = (process.returncode, output)
    return results


def test_the_production_profile_passes_check_deploy(checks) -> None:
    returncode, output = checks["deploy"]
    assert returncode == 0, output
    assert "System check identified no issues" in output


def test_a_wildcard_allowed_host_is_refused_in_production(checks) -> None:
    returncode, output = checks["wildcard"]
    assert returncode != 0
    assert "ALLOWED_HOSTS must name your hosts in production; '*' is refused." in output


def test_production_without_redis_url_refuses_to_start(checks) -> None:
    """Each process would otherwise start its own embedded Redis, and the web's jobs would reach no worker."""
    returncode, output = checks["no-redis"]
    assert returncode != 0
    assert "ImproperlyConfigured: Set REDIS_URL in production" in output
    assert "System check identified no issues" not in output


def test_check_deploy_flags_sqlite_in_production(checks) -> None:
    returncode, output = checks["sqlite"]
    assert returncode != 0, output
    assert "(kizy.W001) The production profile is using SQLite" in output
    assert "Set DATABASE_URL to a PostgreSQL database" in output


def test_production_settings_are_hardened(checks) -> None:
    returncode, output = checks["settings"]
    assert returncode == 0, output
    assert output.strip().splitlines()[-1].split() == ["False", "True", "True", "True", "True", "True"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/accounts/login/", "/api/v1/me", "/no-such-page"])
def test_responses_carry_a_content_security_policy(client, path: str) -> None:
    policy = client.get(path)["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline scripts on our pages
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


@pytest.mark.django_db
def test_pages_are_not_framed_and_not_sniffed(client) -> None:
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
