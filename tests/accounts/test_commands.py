"""Operator commands: `create_api_key` and `bootstrap_demo`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.keys import parse_key
from accounts.models import ApiKey, Membership, Role, User, Workspace
from tests.accounts.helpers import bearer

pytestmark = pytest.mark.django_db


def create_api_key(*args: str) -> tuple[list[str], str]:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines(), err.getvalue()


def test_create_api_key_makes_the_user_and_workspace_and_prints_a_working_key() -> None:
    lines, err = create_api_key(
        "--email", "Ops@Example.com", "--workspace", "Render farm", "--scopes", "read", "generate"
    )
    key = lines[-1]
    assert key == key.strip() and parse_key(key).full == key  # the key alone on the last line
    assert "Created user ops@example.com" in err and "Created workspace Render farm" in err
    user = User.objects.get(email="ops@example.com")
    workspace = Workspace.objects.get(name="Render farm")
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.OWNER

    response = APIClient().get("/api/v1/me", **bearer(key))
    assert response.status_code == 200
    assert response.json()["workspace"]["name"] == "Render farm"
    assert response.json()["scopes"] == ["generate", "read"]
    assert response.json()["user"]["email"] == "ops@example.com"


def test_a_second_run_reuses_the_user_and_workspace() -> None:
    first, _ = create_api_key("--email", "ops@example.com", "--workspace", "Render farm", "--scopes", "read")
    second, err = create_api_key(
        "--email", "ops@example.com", "--workspace", "Render farm", "--scopes", "read"
    )
    assert err == ""
    assert User.objects.filter(email="ops@example.com").count() == 1
    assert Workspace.objects.filter(name="Render farm").count() == 1
    assert ApiKey.objects.count() == 2 and first[-1] != second[-1]
    for key in (first[-1], second[-1]):
        assert APIClient().get("/api/v1/me", **bearer(key)).status_code == 200


def test_create_api_key_will_not_give_a_viewer_more_than_their_role(viewer) -> None:
    with pytest.raises(CommandError, match="generate"):
        create_api_key("--email", viewer.user.email, "--workspace", "Team A", "--scopes", "read", "generate")
    with pytest.raises(CommandError, match="admin"):
        create_api_key("--email", viewer.user.email, "--workspace", "Team A", "--scopes", "admin")
    assert (
        ApiKey.objects.filter(workspace=viewer.workspace, created_by=viewer.user).count() == 1
    )  # the fixture's


def test_create_api_key_refuses_a_bad_email() -> None:
    with pytest.raises(CommandError, match="not a valid email"):
        create_api_key("--email", "not-an-email", "--workspace", "X")
    assert not User.objects.exists()


def test_bootstrap_demo_is_idempotent_and_the_login_works(client) -> None:
    out = StringIO()
    call_command("bootstrap_demo", stdout=out)
    call_command("bootstrap_demo", stdout=out)
    assert User.objects.filter(email="demo@kizy.local").count() == 1
    user = User.objects.get(email="demo@kizy.local")
    assert Workspace.objects.filter(memberships__user=user).count() == 1
    assert out.getvalue().count("Created demo account") == 1
    assert client.login(email="demo@kizy.local", password="kizy-demo")  # noqa: S106


def test_bootstrap_demo_is_refused_in_production(settings) -> None:
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("bootstrap_demo", stdout=StringIO())
    assert not User.objects.filter(email="demo@kizy.local").exists()
