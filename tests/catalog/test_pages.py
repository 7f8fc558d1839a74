"""The catalog page: what an artist sees in the browser, and importing a LoRA from it."""

from __future__ import annotations

from typing import Any

import pytest

from models_catalog.models import LoraAdapter, Source, Status

from .conftest import buffer, lora_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(team: Any) -> None:
    LoraAdapter.objects.create(
        name="Public ink",
        family="sd15",
        source=Source.CIVITAI,
        external_id="1",
        external_version="1",
        approved=True,
        trigger_words=["inky"],
    )
    LoraAdapter.objects.create(
        name="Team secret",
        family="sd15",
        source=Source.UPLOAD,
        external_id="s",
        workspace=team,
        status=Status.INSTALLED,
    )


def test_members_see_public_and_their_own(member: Any, entries: None) -> None:
    page = member.session_client().get("/models/")
    html = page.content.decode()
    assert page.status_code == 200 and "Public ink" in html and "Team secret" in html and "inky" in html
    assert "Bring your own LoRA" in html
    assert "Team secret" not in member.session_client().get("/models/?visibility=public").content.decode()


def test_outsiders_never_see_another_workspace_private_lora(outsider: Any, entries: None) -> None:
    for url in ("/models/", "/models/?q=secret", "/models/?visibility=private"):
        assert "Team secret" not in outsider.session_client().get(url).content.decode()


def test_import_from_the_page(member: Any, viewer: Any, store: Any) -> None:
    response = member.session_client().post(
        "/models/import", {"file": buffer(lora_bytes(), "ink.safetensors"), "name": "My ink"}
    )
    assert response.status_code == 302
    lora = LoraAdapter.objects.get(name="My ink")
    assert lora.workspace == member.workspace and lora.status == Status.INSTALLED
    refused = member.session_client().post(
        "/models/import", {"file": buffer(b"\x80\x04x", "bad.ckpt")}, follow=True
    )
    assert "pickle" in refused.content.decode()
    assert viewer.session_client().post("/models/import", {"huggingface_repo": "a/b"}).status_code == 403
    assert "Bring your own LoRA" not in viewer.session_client().get("/models/").content.decode()


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    from django.test import Client

    assert Client().get("/models/").status_code == 302


def test_the_install_button_queues_the_download_and_reports_progress(
    member: Any, viewer: Any, civitai: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from .test_downloads import _public_entry

    data = lora_bytes(seed=40)
    entry = _public_entry(civitai, model_id=400, version_id=40001, data=data, kind="lora")
    html = member.session_client().get("/models/").content.decode()
    assert 'data-testid="catalog-install"' in html and f"/api/v1/loras/{entry.pk}/install" in html
    assert ">Install</button>" in html and "catalog.js" in html
    assert 'data-testid="catalog-install"' not in viewer.session_client().get("/models/").content.decode()
    assert viewer.session_client().post(f"/models/loras/{entry.pk}/install").status_code == 403

    client = member.session_client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/models/loras/{entry.pk}/install", follow=True)
    assert "is downloading" in response.content.decode()
    assert LoraAdapter.objects.get(pk=entry.pk).status == Status.INSTALLED
    after = client.get("/models/").content.decode()
    assert f"/api/v1/loras/{entry.pk}/install" not in after, "no button once it is installed"
    # The progress the page's script polls, through the session (as the browser does).
    detail = client.get(f"/api/v1/loras/{entry.pk}").json()
    assert detail["install"]["state"] == "installed" and detail["install"]["percent"] == 100
