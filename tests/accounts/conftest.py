"""Fixtures for the accounts tests: an admin persona."""

from __future__ import annotations

import pytest

from accounts.models import Role, Workspace
from tests.conftest import Persona, _persona


@pytest.fixture
def admin(team: Workspace) -> Persona:
    return _persona("dan@example.com", team, Role.ADMIN)
