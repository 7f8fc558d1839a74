"""Renaming and deleting a workspace in the browser: owners only, deletion confirmed by the name, never
the personal workspace, never under a running job; afterwards the session lands in another workspace."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from accounts.middleware import SESSION_KEY
from accounts.models import ApiKey, Membership, Workspace
from accounts.services import user_ensure_personal_workspace
from studio.models import Generation
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def browser(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    session = client.session
    session[SESSION_KEY] = str(persona.workspace.pk)
    session.save()
    return client


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- rename -------------------------------------------------------------------------------------


def test_an_owner_renames_the_workspace(owner: Persona) -> None:
    response = browser(owner).post("/settings/workspace/rename", {"name": "  Studio North  "}, follow=True)
    owner.workspace.refresh_from_db()
    assert owner.workspace.name == "Studio North"
    assert "Renamed Team A to Studio North." in flashed(response)
    assert b'data-testid="workspace-name">Studio North<' in response.content


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_only_an_owner_can_rename(request, owner: Persona, role: str) -> None:
    persona: Persona = request.getfixturevalue(role)
    response = browser(persona).post("/settings/workspace/rename", {"name": "Hijacked"}, follow=True)
    owner.workspace.refresh_from_db()
    assert owner.workspace.name == "Team A"
    assert "Only an owner of Team A can rename it." in flashed(response)
    assert b'data-testid="rename-form"' not in response.content  # the form is not offered either


def test_an_empty_or_overlong_name_is_refused_with_a_reason(owner: Persona) -> None:
    client = browser(owner)
    assert "Give the workspace a name." in flashed(client.post("/settings/workspace/rename", {"name": "  "}))
    too_long = client.post("/settings/workspace/rename", {"name": "x" * 101})
    assert "Use at most 100 characters (this name has 101)." in flashed(too_long)
    owner.workspace.refresh_from_db()
    assert owner.workspace.name == "Team A"


def test_an_outsider_can_only_rename_their_own_workspace(owner: Persona, outsider: Persona) -> None:
    client = browser(outsider)
    client.post("/workspaces/switch", {"workspace": str(owner.workspace.pk)})  # refused: not a member
    client.post("/settings/workspace/rename", {"name": "Renamed by Mallory"})
    owner.workspace.refresh_from_db()
    outsider.workspace.refresh_from_db()
    assert owner.workspace.name == "Team A"
    assert outsider.workspace.name == "Renamed by Mallory"


# --- delete -------------------------------------------------------------------------------------


def test_an_owner_deletes_the_workspace_and_lands_in_their_personal_one(owner: Persona, member: Persona) -> None:
    team = owner.workspace
    generation = Generation.objects.create(workspace=team, graph={"nodes": {}, "outputs": []}, status="succeeded")
    member_client = browser(member)
    response = browser(owner).post("/settings/workspace/delete", {"confirm_name": "Team A"}, follow=True)

    assert not Workspace.objects.filter(pk=team.pk).exists()
    assert not Generation.objects.filter(pk=generation.pk).exists()
    assert not Membership.objects.filter(workspace_id=team.pk).exists()
    assert not ApiKey.objects.filter(workspace_id=team.pk).exists()
    personal = user_ensure_personal_workspace(user=owner.user)
    assert f"Deleted Team A and everything in it. You are now in {personal.name}." in flashed(response)
    assert response.wsgi_request.session[SESSION_KEY] == str(personal.pk)
    assert f'data-testid="workspace-name">{personal.name}<'.replace("'", "&#x27;").encode() in response.content

    # The team's keys stop working, and the member's next page is in a workspace they still have.
    assert owner.client().get("/api/v1/me").status_code == 401
    page = member_client.get("/settings/workspace")
    assert page.status_code == 200
    assert page.wsgi_request.workspace.pk != team.pk


def test_the_workspaces_files_are_deleted_and_no_one_elses(
    owner: Persona, outsider: Persona, django_capture_on_commit_callbacks
) -> None:
    mine = default_storage.save(f"ws/{owner.workspace.pk}/artifacts/ab/picture.png", ContentFile(b"png"))
    nested = default_storage.save(f"ws/{owner.workspace.pk}/datasets/d1/items/one.jpg", ContentFile(b"jpg"))
    theirs = default_storage.save(f"ws/{outsider.workspace.pk}/artifacts/cd/picture.png", ContentFile(b"png"))
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            browser(owner).post("/settings/workspace/delete", {"confirm_name": "Team A"})
        assert len(callbacks) == 1  # the files go once the deletion has committed
        assert not default_storage.exists(mine)
        assert not default_storage.exists(nested)
        assert default_storage.exists(theirs)
    finally:
        for name in (mine, nested, theirs):
            default_storage.delete(name)


@pytest.mark.parametrize("typed", ["", "team a", "Team", "Team A!"])
def test_deleting_needs_the_exact_name_typed_again(owner: Persona, typed: str) -> None:
    response = browser(owner).post("/settings/workspace/delete", {"confirm_name": typed})
    assert Workspace.objects.filter(pk=owner.workspace.pk).exists()
    assert "Type the workspace's name, Team A, exactly to confirm the deletion." in flashed(response)


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_only_an_owner_can_delete(request, owner: Persona, role: str) -> None:
    persona: Persona = request.getfixturevalue(role)
    response = browser(persona).post("/settings/workspace/delete", {"confirm_name": "Team A"}, follow=True)
    assert Workspace.objects.filter(pk=owner.workspace.pk).exists()
    assert "Only an owner of Team A can delete it." in flashed(response)
    assert b'data-testid="delete-form"' not in response.content


def test_the_personal_workspace_cannot_be_deleted(db) -> None:
    client = Client()
    client.post("/accounts/signup/", {"email": "erin@example.com", "password1": "a long pass phrase 77",
                                      "password2": "a long pass phrase 77"})
    personal = Workspace.objects.get(is_personal=True, created_by__email="erin@example.com")
    page = client.get("/settings/workspace")
    assert b'data-testid="delete-form"' not in page.content
    response = client.post("/settings/workspace/delete", {"confirm_name": personal.name})
    assert Workspace.objects.filter(pk=personal.pk).exists()
    assert "A personal workspace cannot be deleted; it is where you land when you sign in." in flashed(response)


@pytest.mark.parametrize("status", ["starting", "processing"])
def test_a_workspace_with_a_running_job_is_not_deleted(owner: Persona, status: str) -> None:
    Generation.objects.create(workspace=owner.workspace, graph={"nodes": {}, "outputs": []}, status=status)
    response = browser(owner).post("/settings/workspace/delete", {"confirm_name": "Team A"})
    assert Workspace.objects.filter(pk=owner.workspace.pk).exists()
    assert ("Team A has 1 generation running; cancel them or wait for them to finish, then delete it."
            in flashed(response))


def test_an_outsider_cannot_delete_another_workspace(owner: Persona, outsider: Persona) -> None:
    client = browser(outsider)
    client.post("/workspaces/switch", {"workspace": str(owner.workspace.pk)})
    client.post("/settings/workspace/delete", {"confirm_name": "Team A"})
    assert Workspace.objects.filter(pk=owner.workspace.pk).exists()
    assert Workspace.objects.filter(pk=outsider.workspace.pk).exists()  # "Team A" is not its name


def test_a_workspace_with_a_model_download_in_progress_is_not_deleted(owner: Persona) -> None:
    from models_catalog.models import Download

    Download.objects.create(workspace=owner.workspace, state=Download.State.DOWNLOADING)
    response = browser(owner).post("/settings/workspace/delete", {"confirm_name": "Team A"})
    assert Workspace.objects.filter(pk=owner.workspace.pk).exists()
    assert flashed(response) == [
        "Team A has 1 model download running; cancel them or wait for them to finish, then delete it."
    ]
