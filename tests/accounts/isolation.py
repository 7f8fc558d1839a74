"""The data behind the tenancy tests (tests/accounts/test_tenancy.py): which API routes exist, what
scope each needs, and which rows belong to a workspace.

To cover a new app, add `tests/<app>/isolation.py` with

    from tests.accounts.isolation import Route
    ROUTES = [Route("generation-detail", "GET", "/api/v1/generations/{id}", "read", make=make_gen), ...]
    TENANT_MODELS = [Generation, (Output, "generation__workspace")]

`make(persona)` (here `make_gen`) creates an object in the persona's workspace and returns
the id to put in `{id}`.
`test_every_api_route_is_covered` fails while a routed (name, method) has no Route anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model

import tests
from accounts.models import ApiKey, Invitation, Membership, Workspace
from accounts.services import api_key_create
from tests.conftest import Persona


@dataclass(frozen=True)
class Route:
    name: str  # the URL name, as `reverse()` knows it
    method: str
    path: str  # `{id}` is replaced by the id of the object `make` creates
    scope: str  # the scope the route needs
    make: Callable[[Persona], str] | None = None
    body: dict[str, Any] | None = None
    ok: int = 200  # what the owner gets

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def make_api_key(persona: Persona) -> str:
    created = api_key_create(
        workspace=persona.workspace, created_by=persona.user, name="target", scopes=["read"]
    )
    return str(created.api_key.pk)


ROUTES: list[Route] = [
    Route("api-me", "GET", "/api/v1/me", "read"),
    Route("api-key-list", "GET", "/api/v1/api-keys", "read"),
    Route(
        "api-key-list", "POST", "/api/v1/api-keys", "admin", body={"name": "new", "scopes": ["read"]}, ok=201
    ),
    Route("api-key-detail", "GET", "/api/v1/api-keys/{id}", "read", make=make_api_key),
    Route("api-key-detail", "DELETE", "/api/v1/api-keys/{id}", "admin", make=make_api_key),
]

# A model with a `workspace` field, or (model, lookup to the workspace).
TENANT_MODELS: list[type[Model] | tuple[type[Model], str]] = [ApiKey, Membership, Invitation]
VOLATILE_FIELDS = {"last_used_at", "updated_at"}  # the caller's own key is touched on every request


def _isolation_modules() -> list[Any]:
    modules = []
    for info in pkgutil.walk_packages(tests.__path__, prefix="tests."):
        if info.name.endswith(".isolation"):
            modules.append(importlib.import_module(info.name))
    return modules


def all_routes() -> list[Route]:
    return [route for module in _isolation_modules() for route in getattr(module, "ROUTES", [])]


def all_tenant_models() -> list[tuple[type[Model], str]]:
    found = []
    for module in _isolation_modules():
        for entry in getattr(module, "TENANT_MODELS", []):
            found.append(entry if isinstance(entry, tuple) else (entry, "workspace"))
    return found


def workspace_state(workspace: Workspace) -> dict[str, list[dict[str, Any]]]:
    """Every row the workspace owns, minus fields that legitimately change on a read."""
    state = {}
    for model, lookup in all_tenant_models():
        rows = model.objects.filter(**{lookup: workspace}).order_by("pk").values()
        state[model.__name__] = [{k: v for k, v in row.items() if k not in VOLATILE_FIELDS} for row in rows]
    return state
