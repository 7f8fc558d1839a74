"""Browser-side workspace management: signup, invitations, roles, leaving and removing, the switcher.

These post to the pages' form endpoints and check the rows and the flash message a person would see.
"""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts.middleware import SESSION_KEY
from accounts.models import Invitation, Membership, Role, User, Workspace
from accounts.services import workspace_create
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def browser(persona_or_user: Persona | User) -> Client:
    client = Client()
    client.force_login(persona_or_user.user if isinstance(persona_or_user, Persona) else persona_or_user)
    return client


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def membership(persona: Persona) -> Membership:
    return Membership.objects.get(workspace=persona.workspace, user=persona.user)


# --- signup -------------------------------------------------------------------------------------


def test_signup_creates_the_user_their_personal_workspace_and_logs_them_in(client) -> None:
    response = client.post(
        "/accounts/signup/",
        {
            "email": "Newbie@Example.com",
            "password1": "plum-tractor-4-violin",
            "password2": "plum-tractor-4-violin",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(email__iexact="newbie@example.com")
    workspace = Workspace.objects.get(memberships__user=user)
    assert workspace.is_personal and workspace.created_by == user
    assert workspace.name == "newbie's workspace"
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.OWNER
    assert client.session["_auth_user_id"] == str(user.pk)
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["workspace"]["name"] == "newbie's workspace"


def test_signup_with_a_taken_email_creates_nothing(client, owner) -> None:
    users, workspaces = User.objects.count(), Workspace.objects.count()
    response = client.post(
        "/accounts/signup/",
        {
            "email": "alice@example.com",
            "password1": "plum-tractor-4-violin",
            "password2": "plum-tractor-4-violin",
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert (User.objects.count(), Workspace.objects.count()) == (users, workspaces)


# --- invitations --------------------------------------------------------------------------------


def test_an_invitation_is_mailed_and_accepted_by_the_invited_address(owner, mailoutbox) -> None:
    response = browser(owner).post(
        "/settings/workspace/invite", {"email": "Dave@Example.com", "role": "member"}
    )
    assert response.status_code == 302
    assert flashed(response) == ["Invitation sent to dave@example.com."]
    invitation = Invitation.objects.get(workspace=owner.workspace)
    assert invitation.email == "dave@example.com" and invitation.invited_by == owner.user
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["dave@example.com"]
    assert f"/invitations/{invitation.token}" in mailoutbox[0].body

    dave = User.objects.create_user("dave@example.com", "pw")
    client = browser(dave)
    accepted = client.post(f"/invitations/{invitation.token}")
    assert accepted.status_code == 302
    assert flashed(accepted) == ["You joined Team A as Member."]
    assert Membership.objects.get(workspace=owner.workspace, user=dave).role == Role.MEMBER
    assert client.session[SESSION_KEY] == str(owner.workspace.pk)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    # The link works once.
    assert client.post(f"/invitations/{invitation.token}").status_code == 404


def _age(invitation: Invitation, days: float) -> None:
    from datetime import timedelta

    from django.utils import timezone

    Invitation.objects.filter(pk=invitation.pk).update(created_at=timezone.now() - timedelta(days=days))


def test_an_invitation_expires_after_two_weeks_and_inviting_again_renews_it(owner, mailoutbox) -> None:
    browser(owner).post("/settings/workspace/invite", {"email": "eve@example.com", "role": "viewer"})
    assert "The link works for 14 days." in mailoutbox[0].body
    invitation = Invitation.objects.get(workspace=owner.workspace, email="eve@example.com")
    _age(invitation, days=14.01)

    eve = browser(User.objects.create_user("eve@example.com", "pw"))
    page = eve.get(f"/invitations/{invitation.token}")
    assert b'data-testid="invitation-expired"' in page.content
    assert b"Accept and join" not in page.content
    refused = eve.post(f"/invitations/{invitation.token}")
    assert flashed(refused)[0].startswith("This invitation expired on ")
    assert not Membership.objects.filter(workspace=owner.workspace, user__email="eve@example.com").exists()

    # The admin invites again: a fresh link, valid from now; the old link is dead.
    browser(owner).post("/settings/workspace/invite", {"email": "eve@example.com", "role": "viewer"})
    renewed = Invitation.objects.get(workspace=owner.workspace, email="eve@example.com")
    assert renewed.token != invitation.token
    assert eve.get(f"/invitations/{invitation.token}").status_code == 404
    assert flashed(eve.post(f"/invitations/{renewed.token}")) == ["You joined Team A as Viewer."]


def test_an_invitation_still_works_on_its_last_day(owner) -> None:
    browser(owner).post("/settings/workspace/invite", {"email": "finn@example.com", "role": "member"})
    invitation = Invitation.objects.get(workspace=owner.workspace, email="finn@example.com")
    _age(invitation, days=13.9)
    finn = browser(User.objects.create_user("finn@example.com", "pw"))
    assert flashed(finn.post(f"/invitations/{invitation.token}")) == ["You joined Team A as Member."]


def test_an_invitation_is_refused_to_another_address(owner) -> None:
    Invitation.objects.create(
        workspace=owner.workspace,
        email="dave@example.com",
        role="admin",
        token="t0k3n",  # noqa: S106
    )
    eve = User.objects.create_user("eve@example.com", "pw")
    response = browser(eve).post("/invitations/t0k3n")
    assert response.status_code == 302
    assert flashed(response) == [
        "This invitation is for dave@example.com; sign in with that address to accept it."
    ]
    assert not Membership.objects.filter(workspace=owner.workspace, user=eve).exists()
    assert Invitation.objects.get(token="t0k3n").accepted_at is None  # noqa: S106


def test_inviting_someone_who_is_already_a_member_is_refused(owner, member) -> None:
    response = browser(owner).post(
        "/settings/workspace/invite", {"email": "BOB@example.com", "role": "admin"}
    )
    assert flashed(response) == ["bob@example.com is already a member of this workspace."]
    assert not Invitation.objects.exists()
    assert membership(member).role == Role.MEMBER


def test_a_member_cannot_invite(member) -> None:
    response = browser(member).post(
        "/settings/workspace/invite", {"email": "dave@example.com", "role": "member"}
    )
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_only_an_owner_can_invite_an_owner(owner, admin) -> None:
    response = browser(admin).post(
        "/settings/workspace/invite", {"email": "dave@example.com", "role": "owner"}
    )
    assert flashed(response) == ["Only an owner can invite another owner."]
    assert not Invitation.objects.exists()
    browser(owner).post("/settings/workspace/invite", {"email": "dave@example.com", "role": "owner"})
    assert Invitation.objects.get().role == Role.OWNER


def test_an_admin_can_withdraw_an_invitation_but_not_another_workspaces(owner, outsider) -> None:
    invitation = Invitation.objects.create(workspace=owner.workspace, email="d@example.com", token="abc")  # noqa: S106
    assert (
        browser(outsider).post(f"/settings/workspace/invitations/{invitation.pk}/revoke").status_code == 404
    )
    assert Invitation.objects.filter(pk=invitation.pk).exists()
    assert browser(owner).post(f"/settings/workspace/invitations/{invitation.pk}/revoke").status_code == 302
    assert not Invitation.objects.filter(pk=invitation.pk).exists()


# --- roles --------------------------------------------------------------------------------------


def change_role(actor: Persona, target: Persona, role: str):
    return browser(actor).post(f"/settings/workspace/members/{membership(target).pk}/role", {"role": role})


def test_only_an_owner_grants_owner(owner, admin, member) -> None:
    response = change_role(admin, member, "owner")
    assert flashed(response) == ["Only an owner can grant or take away the owner role."]
    assert membership(member).role == Role.MEMBER

    response = change_role(owner, member, "owner")
    assert flashed(response) == ["bob@example.com is now Owner."]
    assert membership(member).role == Role.OWNER


def test_an_admin_cannot_demote_an_owner(owner, admin) -> None:
    response = change_role(admin, owner, "viewer")
    assert flashed(response) == ["Only an owner can grant or take away the owner role."]
    assert membership(owner).role == Role.OWNER


def test_the_last_owner_cannot_be_demoted(owner, member) -> None:
    response = change_role(owner, owner, "admin")
    assert flashed(response) == ["A workspace needs at least one owner; make someone else owner first."]
    assert membership(owner).role == Role.OWNER
    # With a second owner, the first may step down.
    change_role(owner, member, "owner")
    response = change_role(owner, owner, "admin")
    assert flashed(response) == ["alice@example.com is now Admin."]
    assert membership(owner).role == Role.ADMIN


def test_a_member_cannot_change_roles(owner, member, viewer) -> None:
    response = change_role(member, viewer, "admin")
    assert response.status_code == 403
    assert membership(viewer).role == Role.VIEWER


def test_roles_of_another_workspace_are_404(owner, member, outsider) -> None:
    response = change_role(outsider, member, "viewer")
    assert response.status_code == 404
    assert membership(member).role == Role.MEMBER


def test_an_unknown_role_is_refused(owner, member) -> None:
    response = change_role(owner, member, "superuser")
    assert flashed(response) == ["Choose a valid role."]
    assert membership(member).role == Role.MEMBER


# --- leaving and removing -----------------------------------------------------------------------


def remove(actor: Persona, target: Persona):
    return browser(actor).post(f"/settings/workspace/members/{membership(target).pk}/remove")


def test_a_member_can_leave(owner, member) -> None:
    client = browser(member)
    client.get("/api/v1/me")  # the middleware stores Team A as the active workspace
    assert client.session[SESSION_KEY] == str(member.workspace.pk)
    response = client.post(f"/settings/workspace/members/{membership(member).pk}/remove")
    assert response.status_code == 302 and response["Location"] == "/"
    assert flashed(response) == ["You left Team A."]
    assert not Membership.objects.filter(workspace=member.workspace, user=member.user).exists()
    assert client.session.get(SESSION_KEY) != str(member.workspace.pk)
    # What they made with their key is no longer usable by them.
    assert member.client().get("/api/v1/me").status_code == 401


def test_the_last_owner_cannot_leave(owner, member) -> None:
    response = remove(owner, owner)
    assert flashed(response) == [
        "The last owner cannot leave; make someone else owner first, or delete the workspace "
        "(Settings → Workspace, owners only)."
    ]
    assert Membership.objects.filter(pk=membership(owner).pk).exists()


def test_nobody_can_leave_their_personal_workspace(db) -> None:
    user = User.objects.create_user("solo@example.com", "pw")
    personal = workspace_create(name="Solo's", owner=user, personal=True)
    other = User.objects.create_user("co@example.com", "pw")
    Membership.objects.create(workspace=personal, user=other, role=Role.OWNER)
    mine = Membership.objects.get(workspace=personal, user=user)
    client = browser(user)
    client.post("/workspaces/switch", {"workspace": str(personal.pk)})
    response = client.post(f"/settings/workspace/members/{mine.pk}/remove")
    assert flashed(response)[-1] == "You cannot leave your personal workspace."
    assert Membership.objects.filter(pk=mine.pk).exists()


def test_an_owner_removes_a_member(owner, member) -> None:
    response = remove(owner, member)
    assert flashed(response) == ["Removed bob@example.com."]
    assert not Membership.objects.filter(workspace=owner.workspace, user=member.user).exists()


def test_a_member_cannot_remove_others(owner, member, viewer) -> None:
    response = remove(member, viewer)
    assert flashed(response) == ["Only owners and admins can remove members."]
    assert Membership.objects.filter(pk=membership(viewer).pk).exists()


def test_an_admin_cannot_remove_an_owner(owner, admin) -> None:
    response = remove(admin, owner)
    assert flashed(response) == ["Only an owner can remove an owner."]
    assert Membership.objects.filter(pk=membership(owner).pk).exists()


def test_members_of_another_workspace_cannot_be_removed(owner, member, outsider) -> None:
    response = remove(outsider, member)
    assert response.status_code == 404
    assert Membership.objects.filter(pk=membership(member).pk).exists()


# --- the workspace switcher ---------------------------------------------------------------------


def test_the_switcher_changes_the_sessions_workspace(owner) -> None:
    side = workspace_create(name="Side project", owner=owner.user)
    client = browser(owner)
    assert client.get("/api/v1/me").json()["workspace"]["name"] == "Team A"
    response = client.post("/workspaces/switch", {"workspace": str(side.pk), "next": "/api/v1/me"})
    assert response.status_code == 302 and response["Location"] == "/api/v1/me"
    assert client.session[SESSION_KEY] == str(side.pk)
    assert client.get("/api/v1/me").json()["workspace"] == {"id": str(side.pk), "name": "Side project"}


@pytest.mark.parametrize("target", ["foreign", "garbage", "missing"])
def test_the_switcher_refuses_a_workspace_you_are_not_in(owner, outsider, target) -> None:
    workspace_id = {"foreign": str(outsider.workspace.pk), "garbage": "not-a-uuid", "missing": ""}[target]
    client = browser(owner)
    client.get("/api/v1/me")
    response = client.post("/workspaces/switch", {"workspace": workspace_id})
    assert response.status_code == 404
    assert client.session[SESSION_KEY] == str(owner.workspace.pk)
    assert client.get("/api/v1/me").json()["workspace"]["name"] == "Team A"


@pytest.mark.parametrize(
    "next_url", ["//evil.example/", "/\\evil.example/", "https://evil.example/", "javascript:alert(1)"]
)
def test_the_switcher_never_redirects_off_site(owner, next_url) -> None:
    side = workspace_create(name="Side project", owner=owner.user)
    response = browser(owner).post("/workspaces/switch", {"workspace": str(side.pk), "next": next_url})
    location = response["Location"]
    assert response.status_code == 302
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location


def test_a_stale_session_workspace_falls_back_to_one_you_are_in(owner, member) -> None:
    client = browser(member)
    session = client.session
    session[SESSION_KEY] = "00000000-0000-0000-0000-000000000000"
    session.save()
    assert client.get("/api/v1/me").json()["workspace"]["name"] == "Team A"


# --- concurrency: two owners stepping down at once ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_owners_stepping_down_at_once_leave_one_owner(owner, member, monkeypatch) -> None:
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (set DATABASE_URL)")
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.core.exceptions import ValidationError

    from accounts.services import membership_change_role

    Membership.objects.filter(pk=membership(member).pk).update(role=Role.OWNER)
    arrived = threading.Semaphore(0)
    original_save = Membership.save

    def save_when_both_have_counted(self, *args, **kwargs):
        # Hold each writer until the other has also counted the owners (or 1 s passed, when it is
        # blocked on the workspace lock): without the lock both would then demote themselves.
        arrived.release()
        arrived.acquire(timeout=1)
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(Membership, "save", save_when_both_have_counted)

    def step_down(persona: Persona) -> str:
        try:
            mine = membership(persona)
            membership_change_role(membership=mine, role=Role.ADMIN, acting=mine)
            return "demoted"
        except ValidationError:
            return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(step_down, [owner, member]))
    assert outcomes == ["demoted", "refused"]
    assert Membership.objects.filter(workspace=owner.workspace, role=Role.OWNER).count() == 1
