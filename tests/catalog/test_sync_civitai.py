"""CivitAI sync through the real client, served the recorded responses over loopback HTTP."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from django.core.management import call_command

from models_catalog.clients.civitai import CivitaiClient
from models_catalog.clients.http import RetryPolicy
from models_catalog.models import BaseModel, LoraAdapter, Status, SyncReport
from models_catalog.normalize.civitai import model_from_version
from models_catalog.services.sync import catalog_sync

from .conftest import CHECKPOINT_LIST, civitai_fixture
from .upstream import FakeUpstream, Request, Response, json_response

pytestmark = pytest.mark.django_db
CURSOR = "22138|364671|25494"


def _lora_page() -> dict[str, Any]:
    version_only = model_from_version(civitai_fixture("model-version_1255556_lora_flux1d.json"))
    return {
        "items": [civitai_fixture("model_1231067_lora_flux1d.json"), version_only],
        "metadata": {"currentPage": 2, "pageSize": 10},
    }


def _serve_two_pages(civitai: FakeUpstream) -> None:
    first, second = civitai_fixture(CHECKPOINT_LIST), _lora_page()

    def models(request: Request) -> Response:
        return json_response(second if request.query.get("cursor") == [CURSOR] else first)

    civitai.add_handler("/api/v1/models", models)


def _expected_versions() -> int:
    first = civitai_fixture(CHECKPOINT_LIST)
    return sum(len(m["modelVersions"]) for m in first["items"]) + 2


def test_sync_follows_the_cursor_and_a_second_run_changes_nothing(civitai: FakeUpstream) -> None:
    _serve_two_pages(civitai)
    report = catalog_sync(source="civitai")
    assert report.outcome == SyncReport.Outcome.SUCCEEDED, report.errors
    listing = civitai.requests_to("/api/v1/models")
    assert len(listing) == 2
    assert listing[0].query["types"] == ["LORA", "Checkpoint"]
    assert "cursor" not in listing[0].query and listing[1].query["cursor"] == [CURSOR]
    assert listing[0].headers["authorization"] == "Bearer test-civitai-token"
    assert report.created == _expected_versions() == BaseModel.objects.count() + LoraAdapter.objects.count()
    assert LoraAdapter.objects.count() == 2
    stamps = dict(BaseModel.objects.values_list("id", "updated_at"))

    again = catalog_sync(source="civitai")
    assert (again.created, again.updated, again.withdrawn) == (0, 0, 0)
    assert again.unchanged == report.created
    assert dict(BaseModel.objects.values_list("id", "updated_at")) == stamps


def test_recorded_fields_land_where_curators_expect_them(civitai: FakeUpstream, owner: Any) -> None:
    _serve_two_pages(civitai)
    catalog_sync(source="civitai")
    lora = LoraAdapter.objects.get(external_id="1231067", external_version="1387174")
    assert lora.family == "flux" and not lora.family_flagged
    assert lora.trigger_words == ["ppstorybook"]
    assert lora.sha256 == "9753338ab693ca82bf89ed77a5d1912879e40051463ec6e330fb9866ce798668"
    assert lora.commercial_use_allowed and "Sell" in lora.commercial_use
    assert sorted(t.name for t in lora.tags.all()) == ["illustration", "storybook", "style"]
    assert lora.source_url.endswith("/models/1231067?modelVersionId=1387174")
    assert lora.preview_images and lora.preview_images[0]["url"].startswith("https://image.civitai.com/")
    assert not lora.approved, "synced entries wait for a curator"
    primary = lora.files.get(is_primary=True)
    assert primary.name == "pp-storybook_rank2_bf16.safetensors" and primary.size_bytes == round(18829.1484375 * 1024)
    model = BaseModel.objects.get(external_version="176425")
    assert model.family == "sd15" and model.license == "creativeml-openrail-m" and model.creator_name == "Merjic"
    assert "<p>" not in model.description and model.description
    # CivitAI's permissions, as recorded: all granted, all refused, and mixed.
    assert (lora.allow_no_credit, lora.allow_derivatives, lora.allow_different_license) == (True, True, True)
    ghost = BaseModel.objects.get(external_version="42601")  # GhostMix
    assert (ghost.allow_no_credit, ghost.allow_derivatives, ghost.allow_different_license) == (False, False, False)
    vision = BaseModel.objects.filter(external_id="4201").first()  # Realistic Vision V6.0 B1
    assert vision is not None
    assert (vision.allow_no_credit, vision.allow_derivatives, vision.allow_different_license) == (
        False,
        True,
        False,
    )
    BaseModel.objects.filter(pk=vision.pk).update(approved=True)
    body = owner.client().get(f"/api/v1/models/{vision.pk}").json()
    assert (body["allow_no_credit"], body["allow_derivatives"], body["allow_different_license"]) == (
        False,
        True,
        False,
    )


def test_family_mapping_keeps_unknown_base_models_but_flags_them(civitai: FakeUpstream) -> None:
    _serve_two_pages(civitai)
    report = catalog_sync(source="civitai")
    other = BaseModel.objects.get(external_version="42601")  # GhostMix, baseModel "Other"
    assert other.family == "unknown" and other.family_flagged and other.upstream_base_model == "Other"
    assert "not a family Kizy runs" in other.status_message
    assert BaseModel.objects.get(external_version="252914").family == "sd15"  # "SD 1.5 LCM"
    assert BaseModel.objects.get(external_version="501240").family == "sd15"  # "SD 1.5 Hyper"
    assert report.flagged == BaseModel.objects.filter(family_flagged=True).count() >= 1


def test_content_rating_filter_skips_items_above_the_operator_limit(civitai: FakeUpstream, settings: Any) -> None:
    settings.KIZY_CATALOG_NSFW_MAX = 1
    _serve_two_pages(civitai)
    report = catalog_sync(source="civitai")
    assert report.filtered > 0
    kept = list(BaseModel.objects.all()) + list(LoraAdapter.objects.all())
    assert kept and all(entry.rating <= 1 for entry in kept)
    assert report.filtered + len(kept) == _expected_versions()
    assert all(image["nsfw_level"] <= 1 for entry in kept for image in entry.preview_images)


def test_429_is_retried_after_the_retry_after_delay(civitai: FakeUpstream) -> None:
    page = {"items": [civitai_fixture("model_1231067_lora_flux1d.json")], "metadata": {}}
    civitai.add(
        "/api/v1/models",
        json_response({"error": "slow down"}, 429, {"Retry-After": "1"}),
        json_response(page),
    )
    client = CivitaiClient(retry=RetryPolicy(attempts=3))
    started = time.monotonic()
    report = catalog_sync(source="civitai", civitai=client)
    assert report.outcome == SyncReport.Outcome.SUCCEEDED
    assert client.waits == [1.0] and time.monotonic() - started >= 1.0
    assert len(civitai.requests_to("/api/v1/models")) == 2
    assert LoraAdapter.objects.count() == 1


def test_persistent_errors_end_in_a_failed_report_with_the_reason(civitai: FakeUpstream) -> None:
    civitai.add("/api/v1/models", json_response({"error": "down"}, 503))
    client = CivitaiClient(retry=RetryPolicy(attempts=2, backoff_s=0.01))
    report = catalog_sync(source="civitai", civitai=client)
    assert report.outcome == SyncReport.Outcome.FAILED
    assert "503" in report.errors[0]["error"] and report.finished_at is not None


def test_items_gone_upstream_are_withdrawn_not_deleted(civitai: FakeUpstream) -> None:
    storybook = civitai_fixture("model_1231067_lora_flux1d.json")
    two_versions = copy.deepcopy(storybook)
    two_versions["id"] = 555
    second = copy.deepcopy(two_versions["modelVersions"][0])
    second["id"] = 556
    two_versions["modelVersions"].append(second)
    civitai.add("/api/v1/models", json_response({"items": [storybook, two_versions], "metadata": {}}))
    assert catalog_sync(source="civitai").created == 3

    # Upstream: model 1231067 is deleted, model 555 drops its second version.
    one_version = copy.deepcopy(two_versions)
    one_version["modelVersions"] = one_version["modelVersions"][:1]
    civitai.add("/api/v1/models", json_response({"items": [one_version], "metadata": {}}))
    civitai.add("/api/v1/models/1231067", json_response({"error": "No model with id 1231067"}, 404))
    report = catalog_sync(source="civitai")
    assert report.withdrawn == 2 and report.outcome == SyncReport.Outcome.SUCCEEDED
    assert LoraAdapter.objects.count() == 3
    gone = LoraAdapter.objects.filter(status=Status.WITHDRAWN)
    assert sorted(gone.values_list("external_version", flat=True)) == ["1387174", "556"]
    assert all(row.withdrawn_at is not None for row in gone)
    assert catalog_sync(source="civitai").withdrawn == 0


def test_a_partial_sync_never_withdraws_what_it_did_not_look_at(civitai: FakeUpstream) -> None:
    _serve_two_pages(civitai)
    catalog_sync(source="civitai")
    civitai.add(
        "/api/v1/models",
        json_response(
            {"items": [civitai_fixture("model_1231067_lora_flux1d.json")], "metadata": {"nextCursor": "more"}}
        ),
    )
    report = catalog_sync(source="civitai", limit=1)
    assert report.withdrawn == 0 and report.seen == 1
    assert not BaseModel.objects.filter(status=Status.WITHDRAWN).exists()
    assert len(civitai.requests_to("/api/v1/models/43331")) == 0


def test_limit_stops_paging_early(civitai: FakeUpstream) -> None:
    _serve_two_pages(civitai)
    report = catalog_sync(source="civitai", limit=3)
    listing = civitai.requests_to("/api/v1/models")
    assert len(listing) == 1 and listing[0].query["limit"] == ["3"]
    assert BaseModel.objects.values("external_id").distinct().count() == 3
    assert report.limit == 3


def test_sync_catalog_command_prints_the_report(civitai: FakeUpstream, capsys: pytest.CaptureFixture[str]) -> None:
    _serve_two_pages(civitai)
    call_command("sync_catalog", "--source", "civitai", "--query", "storybook", "--limit", "2")
    out = capsys.readouterr().out
    assert "CivitAI sync succeeded" in out and "created" in out
    assert civitai.requests_to("/api/v1/models")[0].query["query"] == ["storybook"]
    assert SyncReport.objects.get().query == "storybook"


def test_a_partial_sync_can_recheck_a_few_unlisted_models(civitai: FakeUpstream) -> None:
    storybook = civitai_fixture("model_1231067_lora_flux1d.json")
    civitai.add("/api/v1/models", json_response({"items": [storybook], "metadata": {}}))
    catalog_sync(source="civitai")
    civitai.add("/api/v1/models", json_response({"items": [], "metadata": {"nextCursor": "more"}}))
    civitai.add("/api/v1/models/1231067", json_response({"error": "gone"}, 404))
    report = catalog_sync(source="civitai", limit=5, recheck=1)
    assert report.withdrawn == 1
    assert LoraAdapter.objects.get().status == Status.WITHDRAWN
