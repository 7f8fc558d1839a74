"""The curation admin: bulk actions change rows, sync buttons run a sync, and only staff get in."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from models_catalog.models import BaseModel, Intent, LoraAdapter, Source, SyncReport

from .conftest import civitai_fixture
from .upstream import FakeUpstream, json_response

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/models_catalog/loraadapter/"


@pytest.fixture
def curator() -> Client:
    user = User.objects.create_superuser("curator@example.com", "correct horse battery staple")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def loras() -> list[LoraAdapter]:
    return [
        LoraAdapter.objects.create(
            name=f"LoRA {n}",
            family="sdxl",
            source=Source.CIVITAI,
            external_id=str(n),
            external_version=str(n),
            preview_images=[{"url": f"https://img.example/{n}.jpg"}],
            source_url=f"https://civitai.com/models/{n}",
        )
        for n in range(3)
    ]


def _act(client: Client, action: str, rows: list[Any], url: str = CHANGELIST, **extra: Any) -> Any:
    return client.post(url, {"action": action, "_selected_action": [str(r.pk) for r in rows], **extra})


def test_bulk_curation_actions_change_rows(curator: Client, loras: list[LoraAdapter]) -> None:
    first, second, third = loras
    assert _act(curator, "approve", [first, second]).status_code == 302
    assert list(LoraAdapter.objects.filter(approved=True).order_by("name")) == [first, second]
    _act(curator, "feature", [third])
    third.refresh_from_db()
    assert third.featured and third.approved, "featuring implies approval"
    _act(curator, "hide", [third])
    third.refresh_from_db()
    assert third.hidden and not third.featured
    _act(curator, "unapprove", [first])
    first.refresh_from_db()
    assert not first.approved


def test_assign_intents_in_bulk(curator: Client, loras: list[LoraAdapter]) -> None:
    anime, pixel = Intent.objects.get(slug="anime"), Intent.objects.get(slug="pixel-art")
    form = _act(curator, "assign_intents", loras[:2])
    assert form.status_code == 200 and b"Assign intents" in form.content
    done = _act(curator, "assign_intents", loras[:2], apply="1", intents=[anime.pk, pixel.pk])
    assert done.status_code == 302
    for lora in loras[:2]:
        assert set(lora.intents.values_list("slug", flat=True)) == {"anime", "pixel-art"}
    assert not loras[2].intents.exists()


def test_changelist_shows_thumbnails_source_links_filters_and_sync_buttons(
    curator: Client, loras: list[LoraAdapter]
) -> None:
    page = curator.get(CHANGELIST + "?family__exact=sdxl&approved__exact=0")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'src="https://img.example/0.jpg"' in html and 'href="https://civitai.com/models/0"' in html
    assert "Sync CivitAI now" in html and "Sync Hugging Face now" in html
    for title in (
        "By family",
        "By source",
        "By status",
        "By content rating",
        "By intents",
        "By approved",
        "By featured",
        "By hidden",
    ):
        assert title in html, title
    assert curator.get(CHANGELIST + "?q=LoRA+1").content.decode().count("<strong>LoRA 1</strong>") == 1
    assert curator.get(f"{CHANGELIST}{loras[0].pk}/change/").status_code == 200
    assert curator.get("/admin/models_catalog/basemodel/").status_code == 200
    assert curator.get("/admin/models_catalog/intent/").status_code == 200


def test_sync_button_runs_a_sync_and_the_report_is_shown(
    curator: Client, civitai: FakeUpstream, django_capture_on_commit_callbacks: Any
) -> None:
    civitai.add(
        "/api/v1/models",
        json_response({"items": [civitai_fixture("model_1231067_lora_flux1d.json")], "metadata": {}}),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = curator.post("/admin/models_catalog/syncreport/sync/civitai/", {"limit": "5"})
    assert response.status_code == 302
    report = SyncReport.objects.get()
    assert (report.trigger, report.outcome, report.created, report.limit) == ("admin", "succeeded", 1, 5)
    assert report.triggered_by.email == "curator@example.com"
    listing = curator.get("/admin/models_catalog/syncreport/").content.decode()
    assert "succeeded" in listing.lower()
    assert curator.get(f"/admin/models_catalog/syncreport/{report.pk}/change/").status_code == 200


def test_people_who_are_not_staff_cannot_reach_the_admin(owner: Any, loras: list[LoraAdapter]) -> None:
    anonymous = Client()
    assert anonymous.get(CHANGELIST).status_code == 302
    member = Client()
    member.force_login(owner.user)
    page = member.get(CHANGELIST)
    assert page.status_code == 302 and "/admin/login/" in page["Location"]
    _act(member, "approve", loras)
    assert not LoraAdapter.objects.filter(approved=True).exists()
    assert member.post("/admin/models_catalog/syncreport/sync/civitai/").status_code == 302
    assert not SyncReport.objects.exists()
    assert owner.client().get("/admin/models_catalog/basemodel/").status_code == 302, "API keys do not open it"
    assert BaseModel.objects.count() == 0


def test_the_change_page_shows_civitai_permissions_and_the_unverified_override(curator: Client) -> None:
    model = BaseModel.objects.create(
        name="Permissions",
        family="sd15",
        source=Source.CIVITAI,
        external_id="9",
        external_version="99",
        allow_no_credit=False,
        allow_derivatives=True,
        allow_different_license=False,
    )
    html = curator.get(f"/admin/models_catalog/basemodel/{model.pk}/change/").content.decode()
    for label in ("Allow no credit", "Allow derivatives", "Allow different license", "Allow unverified"):
        assert label in html, label
    assert 'name="allow_unverified"' in html, "curators can set the override"
    assert 'name="allow_derivatives"' not in html, "permissions come from the source, read-only"
