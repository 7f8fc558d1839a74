"""Shared fixtures: the personas every endpoint is tested with (owner, member, viewer, outsider)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Membership, Role, Scope, User, Workspace
from accounts.services import api_key_create, workspace_create

# The real stack (web + worker) for browser tests, defined once here so the studio's and training's
# browser tests share one instance: two stacks would share the stack's Redis database, and one's worker
# would take the other's tasks.
from tests.browser.studio_fixtures import studio_page, studio_stack  # noqa: F401


@dataclass
class Persona:
    user: User
    workspace: Workspace
    role: str
    key: str  # a full API key with every scope the role allows

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client

    def session_client(self) -> APIClient:
        client = APIClient(enforce_csrf_checks=False)
        client.force_login(self.user)
        return client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """The default PBKDF2 costs ~0.3 s per user; personas create several users per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _persona(email: str, workspace: Workspace, role: str) -> Persona:
    user = User.objects.create_user(email, "correct horse battery staple")
    Membership.objects.create(workspace=workspace, user=user, role=role)
    scopes = Membership.objects.get(workspace=workspace, user=user).scopes
    key = api_key_create(workspace=workspace, created_by=user, name=f"{role} key", scopes=scopes).secret
    return Persona(user=user, workspace=workspace, role=role, key=key)


@pytest.fixture
def team(db: None) -> Workspace:
    owner = User.objects.create_user("alice@example.com", "correct horse battery staple")
    return workspace_create(name="Team A", owner=owner)


@pytest.fixture
def owner(team: Workspace) -> Persona:
    user = User.objects.get(email="alice@example.com")
    key = api_key_create(workspace=team, created_by=user, name="owner key", scopes=Scope.values).secret
    return Persona(user=user, workspace=team, role=Role.OWNER, key=key)


@pytest.fixture
def member(team: Workspace) -> Persona:
    return _persona("bob@example.com", team, Role.MEMBER)


@pytest.fixture
def viewer(team: Workspace) -> Persona:
    return _persona("carol@example.com", team, Role.VIEWER)


@pytest.fixture
def outsider(db: None) -> Persona:
    user = User.objects.create_user("mallory@example.com", "correct horse battery staple")
    workspace = workspace_create(name="Team B", owner=user)
    key = api_key_create(workspace=workspace, created_by=user, name="outsider key", scopes=Scope.values).secret
    return Persona(user=user, workspace=workspace, role=Role.OWNER, key=key)


# --- for tests that start real worker or server processes ---------------------------------------


def database_url() -> str:
    """The test database as a URL a subprocess (worker, web server) can open."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(config["NAME"])
        assert not name.startswith(("file:", ":memory:")), "subprocess tests need a file-backed test database"
        return f"sqlite:///{name}"
    user = config.get("USER") or ""
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return (
        f"postgres://{auth}{config.get('HOST') or '127.0.0.1'}:{config.get('PORT') or 5432}/{config['NAME']}"
    )


def subprocess_env(settings: Any, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url(),
            "KIZY_MODEL_STORE": str(settings.KIZY_MODEL_STORE),
            "KIZY_DEVICE": "cpu",
            "DJANGO_SETTINGS_MODULE": "kizy_site.settings",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def modal_cancel_flags(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """The Modal app's shared cancel flags (a `modal.Dict` in production), as a plain dict."""
    from gpu_workers.backends import modal_app

    flags: dict[str, bool] = {}
    monkeypatch.setattr(modal_app, "cancel_flags", flags)
    return flags
