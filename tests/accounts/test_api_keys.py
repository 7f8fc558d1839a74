"""API keys (K1, K2): format and checksum, what is stored, what each key may do, and when it stops working."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.keys import generate_key, parse_key
from accounts.models import ApiKey, Membership, Role, Scope
from accounts.services import api_key_create, membership_change_role
from accounts.workspace_auth import KeyRejected, auth_for_key_string
from tests.accounts.helpers import bearer, typo

pytestmark = pytest.mark.django_db


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(**bearer(key))
    return client


# --- K1: format, checksum, storage ---------------------------------------------------------------


def test_generated_key_has_the_documented_shape_and_a_valid_checksum() -> None:
    generated = generate_key()
    assert generated.full.startswith(f"kizy_{generated.prefix}_")
    assert len(generated.full) == 52
    assert parse_key(generated.full) == generated
    assert generated.hashed == hashlib.sha256(generated.full.encode()).hexdigest()


@pytest.mark.parametrize("position", [5, 12, 20, 30, -7, -1])  # prefix, secret and checksum characters
def test_a_one_character_typo_is_rejected_with_no_database_query(owner, django_assert_num_queries, position):
    mistyped = typo(owner.key, position)
    with django_assert_num_queries(0), pytest.raises(KeyRejected, match="typo"):
        auth_for_key_string(mistyped)
    with django_assert_num_queries(0):
        response = key_client(mistyped).get("/api/v1/me")
    assert response.status_code == 401
    assert "typo" in response.json()["detail"] and "checksum" in response.json()["detail"]


def test_a_well_formed_unknown_key_does_reach_the_database(db) -> None:
    # The counterpart of the test above: proves the zero-query assertion measures something.
    with CaptureQueriesContext(connection) as queries:
        response = key_client(generate_key().full).get("/api/v1/me")
    assert response.status_code == 401
    assert "Unknown API key" in response.json()["detail"]
    assert len(queries) >= 1


def test_only_the_prefix_and_sha256_are_stored(owner) -> None:
    response = owner.client().post("/api/v1/api-keys", {"name": "ci", "scopes": ["read"]}, format="json")
    assert response.status_code == 201, response.content
    secret = response.json()["key"]
    prefix, body = secret.split("_")[1], secret.split("_")[2]
    row = ApiKey.objects.get(pk=response.json()["id"])
    assert row.prefix == prefix
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        pk = ApiKey._meta.pk.get_db_prep_value(row.pk, connection)
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s", [pk])  # noqa: S608
        stored = cursor.fetchone()
    assert stored is not None
    for value in stored:
        assert secret not in str(value)
        assert body[:16] not in str(value)  # no part of the secret either


def test_the_key_is_returned_once_at_creation_and_never_listed(owner) -> None:
    created = owner.client().post(
        "/api/v1/api-keys", {"name": "deploy bot", "scopes": ["read"]}, format="json"
    )
    assert created.status_code == 201
    secret = created.json()["key"]
    assert parse_key(secret).prefix == created.json()["prefix"]

    listing = owner.client().get("/api/v1/api-keys")
    detail = owner.client().get(f"/api/v1/api-keys/{created.json()['id']}")
    assert listing.status_code == detail.status_code == 200
    assert "deploy bot" in [row["name"] for row in listing.json()["results"]]
    assert all("key" not in row for row in listing.json()["results"])
    assert "key" not in detail.json()
    assert secret not in listing.content.decode() and secret not in detail.content.decode()
    # …and the key it printed works.
    assert key_client(secret).get("/api/v1/me").json()["api_key"]["name"] == "deploy bot"


# --- authentication outcomes --------------------------------------------------------------------


def test_a_valid_key_gets_200_on_me_with_its_workspace_and_scopes(owner) -> None:
    response = owner.client().get("/api/v1/me")
    assert response.status_code == 200
    body = response.json()
    assert body["workspace"] == {"id": str(owner.workspace.pk), "name": "Team A"}
    assert body["user"]["email"] == "alice@example.com"
    assert body["scopes"] == sorted(Scope.values)
    assert body["api_key"]["prefix"] == parse_key(owner.key).prefix


def test_missing_authorization_is_401_json(db) -> None:
    response = APIClient().get("/api/v1/me")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == 'Bearer realm="kizy"'


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer not-a-key", "API keys look like 'kizy_XXXXXXXX_"),
        ("Bearer kizy_short_key", "API keys look like"),
        ("Basic YWxpY2U6c2VjcmV0", "Send the key as 'Authorization: Bearer <key>'"),
        ("Bearer two words", "Send the key as 'Authorization: Bearer <key>'"),
    ],
)
def test_malformed_authorization_is_401_with_a_reason(db, header, message) -> None:
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_unknown_key_is_401(db) -> None:
    response = key_client(generate_key().full).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("Unknown API key")


def test_a_revoked_key_is_401(owner, member) -> None:
    member_key_id = member.client().get("/api/v1/me").json()["api_key"]["id"]
    revoked = owner.client().delete(f"/api/v1/api-keys/{member_key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["is_active"] is False and revoked.json()["revoked_at"]
    response = member.client().get("/api/v1/me")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_last_used_at_is_recorded(owner) -> None:
    row = ApiKey.objects.get(prefix=parse_key(owner.key).prefix)
    assert row.last_used_at is None
    assert owner.client().get("/api/v1/me").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


# --- K2: scopes ---------------------------------------------------------------------------------


def test_a_read_only_key_gets_403_on_writes_naming_the_scope(owner) -> None:
    read_only = api_key_create(
        workspace=owner.workspace, created_by=owner.user, name="ro", scopes=["read"]
    ).secret
    assert key_client(read_only).get("/api/v1/api-keys").status_code == 200
    response = key_client(read_only).post(
        "/api/v1/api-keys", {"name": "x", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 403
    assert "'admin' scope" in response.json()["detail"]
    assert "this key has read" in response.json()["detail"]
    assert ApiKey.objects.filter(name="x").count() == 0


def test_a_member_cannot_create_an_admin_key(member) -> None:
    before = ApiKey.objects.count()
    response = member.client().post(
        "/api/v1/api-keys", {"name": "escalate", "scopes": ["admin"]}, format="json"
    )
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert ApiKey.objects.count() == before


def test_a_key_cannot_grant_scopes_it_does_not_hold(owner) -> None:
    # An admin-scoped key without `generate` may manage keys, but not mint one that generates.
    limited = api_key_create(
        workspace=owner.workspace, created_by=owner.user, name="key manager", scopes=["read", "admin"]
    ).secret
    response = key_client(limited).post(
        "/api/v1/api-keys", {"name": "wider", "scopes": ["generate"]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "You cannot grant scopes you do not hold yourself: generate."
    assert not ApiKey.objects.filter(name="wider").exists()
    narrower = key_client(limited).post(
        "/api/v1/api-keys", {"name": "narrower", "scopes": ["read"]}, format="json"
    )
    assert narrower.status_code == 201


def test_unknown_scopes_are_400_naming_the_choices(owner) -> None:
    response = owner.client().post("/api/v1/api-keys", {"name": "x", "scopes": ["root"]}, format="json")
    assert response.status_code == 400
    assert "scopes" in response.json()["detail"] and "root" in response.json()["detail"]


def test_a_members_key_loses_scopes_when_the_member_is_downgraded(owner, member) -> None:
    assert member.client().get("/api/v1/me").json()["scopes"] == ["generate", "read", "train"]
    membership = Membership.objects.get(workspace=member.workspace, user=member.user)
    owner_membership = Membership.objects.get(workspace=owner.workspace, user=owner.user)
    membership_change_role(membership=membership, role=Role.VIEWER, acting=owner_membership)
    body = member.client().get("/api/v1/me").json()
    assert body["scopes"] == ["read"]
    assert body["role"] == "viewer"


def test_an_owners_admin_key_stops_managing_keys_once_demoted(owner, member) -> None:
    membership = Membership.objects.get(workspace=member.workspace, user=member.user)
    owner_membership = Membership.objects.get(workspace=owner.workspace, user=owner.user)
    membership_change_role(membership=membership, role=Role.OWNER, acting=owner_membership)
    membership_change_role(membership=owner_membership, role=Role.MEMBER, acting=owner_membership)
    response = owner.client().post("/api/v1/api-keys", {"name": "x", "scopes": ["read"]}, format="json")
    assert response.status_code == 403
    assert "'admin' scope" in response.json()["detail"]


def test_a_removed_members_key_is_401(member) -> None:
    assert member.client().get("/api/v1/me").status_code == 200
    Membership.objects.filter(workspace=member.workspace, user=member.user).delete()
    response = member.client().get("/api/v1/me")
    assert response.status_code == 401
    assert "left the workspace" in response.json()["detail"]


def test_a_deleted_users_key_is_401(member) -> None:
    member.user.delete()
    response = member.client().get("/api/v1/me")
    assert response.status_code == 401
    assert "no longer exists" in response.json()["detail"]


def test_responses_that_show_a_new_key_are_never_cached(owner) -> None:
    created = owner.client().post("/api/v1/api-keys", {"name": "ci", "scopes": ["read"]}, format="json")
    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"

    page = owner.session_client().post("/settings/api-keys", {"name": "laptop", "scopes": ["read"]})
    assert page.status_code == 200
    assert page.context["new_key"].startswith("kizy_")
    assert page["Cache-Control"] == "no-store"
