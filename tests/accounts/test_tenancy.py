"""Tenancy and roles on every `/api/v1/` route (T1, T2), and CSRF on the browser session (D2).

Driven by the `ROUTES` of every `tests/<app>/isolation.py` (see tests/accounts/isolation.py for how
to add an app). Each route is checked with every persona:

- owner, member, viewer: 2xx when their role holds the route's scope, otherwise 403 naming the scope;
- outsider (owner of another workspace): 404 on the owner's objects, none of them in any listing;
- nobody: 401;
- and in every refused case the owner's workspace is exactly as it was.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from accounts.models import ROLE_SCOPES, ApiKey, Membership
from tests.accounts.isolation import Route, all_routes, workspace_state
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

ROUTES = all_routes()


def call(client: APIClient, route: Route, object_id: str | None = None):
    path = route.path.format(id=object_id) if "{id}" in route.path else route.path
    if route.body is not None:
        return client.generic(route.method, path, json.dumps(route.body), content_type="application/json")
    return client.generic(route.method, path)


def route_params() -> list[Any]:
    return [pytest.param(route, id=str(route)) for route in ROUTES]


# The API surfaces: Kizy's own, and the OpenAI/Replicate-compatible one.
API_PREFIXES = ("api/v1/", "v1/")


def api_v1_endpoints() -> set[tuple[str, str]]:
    """(url name, HTTP method) for every view routed under the API prefixes."""
    found: set[tuple[str, str]] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern).lstrip("^")
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith(API_PREFIXES):
                callback = pattern.callback
                if getattr(callback, "actions", None):
                    methods = set(callback.actions)
                else:
                    view_class = callback.view_class
                    methods = {m for m in view_class.http_method_names if hasattr(view_class, m)}
                for method in methods - {"head", "options"}:
                    found.add((pattern.name, method.upper()))

    walk(get_resolver().url_patterns, "")
    return found


def test_every_api_route_is_covered() -> None:
    endpoints = api_v1_endpoints()
    covered = {(route.name, route.method) for route in ROUTES}
    assert endpoints, "no /api/v1/ routes found: the walk is broken"
    assert endpoints - covered == set(), (
        "add these routes to a tests/<app>/isolation.py (see tests/accounts/isolation.py)"
    )
    for route in ROUTES:
        assert resolve(route.path.format(id="00000000-0000-0000-0000-000000000000")).url_name == route.name


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("persona_name", ["owner", "member", "viewer"])
def test_each_role_gets_what_its_scopes_allow(route: Route, persona_name: str, request, owner) -> None:
    persona: Persona = request.getfixturevalue(persona_name)
    object_id = route.make(owner) if route.make else None
    before = workspace_state(owner.workspace)
    response = call(persona.client(), route, object_id)
    if route.scope in ROLE_SCOPES[persona.role]:
        assert response.status_code == route.ok, response.content
    else:
        assert response.status_code == 403, response.content
        assert f"'{route.scope}' scope" in response.json()["detail"]
        assert workspace_state(owner.workspace) == before


@pytest.mark.parametrize("route", route_params())
def test_the_session_of_a_role_without_the_scope_gets_403(route: Route, owner, viewer) -> None:
    object_id = route.make(owner) if route.make else None
    before = workspace_state(owner.workspace)
    response = call(viewer.session_client(), route, object_id)
    if route.scope in ROLE_SCOPES[viewer.role]:
        assert response.status_code == route.ok
    else:
        assert response.status_code == 403
        assert "your role does not allow it" in response.json()["detail"]
        assert workspace_state(owner.workspace) == before


@pytest.mark.parametrize("via", ["key", "session"])
@pytest.mark.parametrize("route", route_params())
def test_an_outsider_never_reaches_the_owners_objects(route: Route, via: str, owner, outsider) -> None:
    object_id = route.make(owner) if route.make else None
    before = workspace_state(owner.workspace)
    client = outsider.client() if via == "key" else outsider.session_client()
    response = call(client, route, object_id)
    if route.make:
        assert response.status_code == 404, response.content
        assert response.json()["detail"].startswith("No ")
    else:
        # Collections answer for the outsider's own workspace and name nothing of the owner's.
        assert response.status_code == route.ok, response.content
        text = response.content.decode()
        assert str(owner.workspace.pk) not in text and "Team A" not in text
        for key in ApiKey.objects.filter(workspace=owner.workspace):
            assert str(key.pk) not in text and key.prefix not in text
    assert workspace_state(owner.workspace) == before


@pytest.mark.parametrize("route", [r for r in route_params() if r.values[0].make])
def test_an_owner_of_two_workspaces_reaches_objects_only_through_the_right_one(route: Route, owner, outsider):
    # The outsider's key belongs to workspace B; its creator joining A later changes nothing for B's key.
    Membership.objects.create(workspace=owner.workspace, user=outsider.user, role="owner")
    object_id = route.make(owner)
    response = call(outsider.client(), route, object_id)
    assert response.status_code == 404


@pytest.mark.parametrize("route", route_params())
def test_no_credentials_is_401(route: Route, owner) -> None:
    object_id = route.make(owner) if route.make else None
    before = workspace_state(owner.workspace)
    response = call(APIClient(), route, object_id)
    assert response.status_code == 401
    assert response.json()["detail"]
    assert workspace_state(owner.workspace) == before


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "1"])
def test_a_malformed_or_missing_object_id_is_404_not_500(owner, bad_id) -> None:
    response = owner.client().get(f"/api/v1/api-keys/{bad_id}")
    assert response.status_code == 404
    assert response.json()["detail"]


# --- D2: CSRF on the session, none on API keys --------------------------------------------------


def browser_login(persona: Persona) -> APIClient:
    """Log in through the real login form, as a browser does, with CSRF enforced throughout."""
    client = APIClient(enforce_csrf_checks=True)
    assert client.get("/accounts/login/").status_code == 200
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {
            "login": persona.user.email,
            "password": "correct horse battery staple",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302, response.content[:500]
    return client


def test_a_session_post_without_a_csrf_token_is_403(owner) -> None:
    client = browser_login(owner)
    assert client.get("/api/v1/me").json()["workspace"]["name"] == "Team A"  # the session is good
    before = ApiKey.objects.count()
    response = client.post("/api/v1/api-keys", {"name": "csrf", "scopes": ["read"]}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert ApiKey.objects.count() == before


def test_a_session_post_with_the_csrf_token_succeeds(owner) -> None:
    client = browser_login(owner)
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/api-keys",
        {"name": "from the browser", "scopes": ["read"]},
        format="json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 201, response.content
    assert ApiKey.objects.get(pk=response.json()["id"]).created_by == owner.user


def test_an_api_key_post_needs_no_csrf_token(owner) -> None:
    client = APIClient(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/api-keys",
        {"name": "ci", "scopes": ["read"]},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {owner.key}",
    )
    assert response.status_code == 201, response.content
