"""Fixtures for the accounts tests: a fast password hasher and an admin persona."""

from __future__ import annotations

import pytest
from django.conf import LazySettings

from accounts.models import Role, Workspace
from tests.conftest import Persona, _persona


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: LazySettings) -> None:
    # The default PBKDF2 costs ~0.3 s per user; personas create several users per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin(team: Workspace) -> Persona:
    return _persona("dan@example.com", team, Role.ADMIN)
