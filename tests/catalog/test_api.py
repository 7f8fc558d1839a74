"""The catalog API as artists and scripts use it, and tenancy: a private LoRA never leaks (T2/T3)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from django.core.files.storage import default_storage

from models_catalog import access
from models_catalog.models import BaseModel, Intent, LoraAdapter, Source, Status, Tag

from .conftest import buffer, civitai_lora_model, lora_bytes
from .upstream import FakeUpstream, file_response, json_response

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(team: Any) -> dict[str, Any]:
    anime = Intent.objects.get(slug="anime")
    model = BaseModel.objects.create(
        name="Public SD 1.5",
        family="sd15",
        source=Source.HUGGINGFACE,
        external_id="org/sd15",
        approved=True,
        status=Status.INSTALLED,
        store_ref="hf:org/sd15@abc",
        download_count=5,
    )
    hidden_model = BaseModel.objects.create(
        name="Hidden",
        family="sd15",
        source=Source.HUGGINGFACE,
        external_id="org/hidden",
        approved=True,
        hidden=True,
    )
    public = LoraAdapter.objects.create(
        name="Cel shade",
        family="sd15",
        source=Source.CIVITAI,
        external_id="1",
        external_version="11",
        approved=True,
        featured=True,
        trigger_words=["celshade"],
        status=Status.INSTALLED,
        store_ref="civitai:11",
    )
    public.intents.add(anime)
    public.tags.add(Tag.objects.create(name="style"))
    unapproved = LoraAdapter.objects.create(
        name="Unreviewed", family="sd15", source=Source.CIVITAI, external_id="2", external_version="21"
    )
    xl = LoraAdapter.objects.create(
        name="XL thing", family="sdxl", source=Source.HUGGINGFACE, external_id="org/xl", approved=True
    )
    private = LoraAdapter.objects.create(
        name="Team secret style",
        family="sd15",
        source=Source.UPLOAD,
        external_id="a" * 64,
        workspace=team,
        trigger_words=["teamsecret"],
        status=Status.INSTALLED,
        store_ref=f"artifact:ws/{team.pk}/artifacts/{'a' * 64}.safetensors",
    )
    return {
        "model": model,
        "hidden_model": hidden_model,
        "public": public,
        "unapproved": unapproved,
        "xl": xl,
        "private": private,
    }


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(item["name"] for item in response.json()["results"])


def test_lora_list_shows_public_curated_plus_own_private(owner: Any, catalog: dict[str, Any]) -> None:
    assert _names(owner.client().get("/api/v1/loras")) == ["Cel shade", "Team secret style", "XL thing"]
    body = owner.client().get(f"/api/v1/loras/{catalog['private'].pk}").json()
    assert body["visibility"] == "private" and body["ready"] is True


def test_lora_filters(owner: Any, catalog: dict[str, Any]) -> None:
    client = owner.client()
    assert _names(client.get("/api/v1/loras?family=sdxl")) == ["XL thing"]
    assert _names(client.get("/api/v1/loras?intent=anime")) == ["Cel shade"]
    assert _names(client.get("/api/v1/loras?source=upload")) == ["Team secret style"]
    assert _names(client.get("/api/v1/loras?tag=style")) == ["Cel shade"]
    assert _names(client.get("/api/v1/loras?q=celshade")) == ["Cel shade"], "trigger words are searchable"
    assert _names(client.get("/api/v1/loras?visibility=private")) == ["Team secret style"]
    first = client.get("/api/v1/loras").json()["results"][0]
    assert first["name"] == "Cel shade", "featured first"
    assert first["intents"] == ["anime"] and first["tags"] == ["style"] and first["trigger_words"] == ["celshade"]


def test_models_and_intents(viewer: Any, catalog: dict[str, Any]) -> None:
    client = viewer.client()
    assert _names(client.get("/api/v1/models")) == ["Public SD 1.5"]
    detail = client.get(f"/api/v1/models/{catalog['model'].pk}/")
    assert detail.status_code == 200 and detail.json()["family"] == "sd15" and detail.json()["ready"]
    assert client.get(f"/api/v1/models/{catalog['hidden_model'].pk}").status_code == 404
    intents = client.get("/api/v1/intents").json()
    assert len(intents) == 12 and all(len(i["example_prompts"]) >= 3 for i in intents)
    assert client.get("/api/v1/intents/pixel-art").json()["name"] == "Pixel art"


def test_outsider_never_sees_a_workspace_private_lora(outsider: Any, catalog: dict[str, Any]) -> None:
    client = outsider.client()
    private, model = catalog["private"], catalog["model"]
    assert "Team secret style" not in _names(client.get("/api/v1/loras"))
    assert "Team secret style" not in _names(client.get("/api/v1/loras?q=teamsecret"))
    assert "Team secret style" not in _names(client.get("/api/v1/loras?source=upload"))
    missing = client.get(f"/api/v1/loras/{private.pk}")
    assert missing.status_code == 404 and "No LoRA" in missing.json()["detail"]
    assert client.get(f"/api/v1/loras/{private.pk}/compatibility?model={model.pk}").status_code == 404
    suggestion = client.post("/api/v1/suggest", {"prompt": "teamsecret style portrait"}, format="json").json()
    assert all(lora["name"] != "Team secret style" for lora in suggestion["loras"])
    with pytest.raises(LookupError):
        access.store_ref_for_lora(workspace=outsider.workspace, ref=str(private.pk))
    with pytest.raises(LookupError):  # nor by naming its store reference directly
        access.store_ref_for_lora(workspace=outsider.workspace, ref=private.store_ref)
    assert private.pk not in set(access.lora_ids_visible_to(outsider.workspace))
    assert access.store_ref_for_lora(workspace=private.workspace, ref=str(private.pk)) == private.store_ref


def test_unapproved_entries_are_invisible_and_unusable(owner: Any, catalog: dict[str, Any]) -> None:
    unapproved = catalog["unapproved"]
    assert owner.client().get(f"/api/v1/loras/{unapproved.pk}").status_code == 404
    with pytest.raises(LookupError):
        access.get_lora_for_workspace(workspace=owner.workspace, id=unapproved.pk)
    with pytest.raises(LookupError, match="not installed yet"):
        access.store_ref_for_lora(workspace=owner.workspace, ref=str(catalog["xl"].pk))


def test_compatibility_endpoint(owner: Any, catalog: dict[str, Any]) -> None:
    url = f"/api/v1/loras/{catalog['xl'].pk}/compatibility?model={catalog['model'].pk}"
    body = owner.client().get(url).json()
    assert body["ok"] is False and "SDXL LoRA" in body["reason"]
    ok = owner.client().get(f"/api/v1/loras/{catalog['public'].pk}/compatibility?model={catalog['model'].pk}")
    assert ok.json()["ok"] is True


def test_upload_import_is_private_and_checked(member: Any, outsider: Any, store: Any) -> None:
    data = lora_bytes(kohya=True)
    response = member.client().post(
        "/api/v1/loras/import",
        {
            "file": buffer(data, "my-style.safetensors"),
            "name": "My style",
            "trigger_words": ["mystyle"],
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    lora = body["lora"]
    assert lora["visibility"] == "private" and lora["family"] == "sd15" and lora["lora_format"] == "kohya"
    assert lora["trigger_words"] == ["mystyle"] and body["download"] is None and body["created"]
    entry = LoraAdapter.objects.get(pk=lora["id"])
    key = entry.store_ref.removeprefix("artifact:")
    assert key.startswith(f"ws/{member.workspace.pk}/artifacts/") and default_storage.exists(key)
    assert outsider.client().get(f"/api/v1/loras/{entry.pk}").status_code == 404
    again = member.client().post(
        "/api/v1/loras/import", {"file": buffer(data, "again.safetensors")}, format="multipart"
    )
    assert again.status_code == 201 and again.json()["lora"]["id"] == lora["id"] and not again.json()["created"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("evil.ckpt", pickle.dumps({"a": 1}), "pickle"),
        ("evil.safetensors", pickle.dumps({"a": 1}), "pickle file disguised"),
        ("broken.safetensors", b"\xff" * 64, "not a valid safetensors file"),
        ("base.safetensors", None, "holds no LoRA weights"),
    ],
)
def test_unsafe_or_wrong_uploads_are_refused_with_the_reason(
    member: Any, store: Any, name: str, data: bytes | None, message: str
) -> None:
    if data is None:
        import numpy as np
        from safetensors.numpy import save

        data = save({"conv_in.weight": np.zeros((4, 4), dtype=np.float32)})
    response = member.client().post("/api/v1/loras/import", {"file": buffer(data, name)}, format="multipart")
    assert response.status_code == 400 and message in response.json()["detail"], response.content
    assert not LoraAdapter.objects.exists()


def test_viewers_cannot_import(viewer: Any, store: Any) -> None:
    response = viewer.client().post(
        "/api/v1/loras/import", {"file": buffer(lora_bytes(), "a.safetensors")}, format="multipart"
    )
    assert response.status_code == 403 and "generate" in response.json()["detail"]


def test_import_needs_exactly_one_source(member: Any) -> None:
    response = member.client().post("/api/v1/loras/import", {}, format="json")
    assert response.status_code == 400 and "exactly one" in response.json()["detail"]


def test_import_by_civitai_link_downloads_in_the_background(
    member: Any, outsider: Any, civitai: FakeUpstream, django_capture_on_commit_callbacks: Any
) -> None:
    data = lora_bytes(seed=9)
    civitai.add("/api/v1/model-versions/4401", json_response({"id": 4401, "modelId": 44}))
    civitai.add(
        "/api/v1/models/44",
        json_response(
            civitai_lora_model(
                model_id=44, version_id=4401, data=data, api_url=f"{civitai.url}/api/v1", name="Linked style"
            )
        ),
    )
    civitai.add_handler("/api/v1/download/models/4401", file_response(data))
    with django_capture_on_commit_callbacks(execute=True):
        response = member.client().post(
            "/api/v1/loras/import",
            {"civitai_url": "https://civitai.com/api/download/models/4401"},
            format="json",
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["lora"]["visibility"] == "private" and body["download"]["state"] == "queued"
    detail = member.client().get(f"/api/v1/loras/{body['lora']['id']}").json()
    assert detail["status"] == "installed" and detail["install"]["state"] == "installed" and detail["ready"]
    assert detail["name"] == "Linked style" and detail["trigger_words"] == ["tstyle"]
    assert outsider.client().get(f"/api/v1/loras/{body['lora']['id']}").status_code == 404
    assert "Linked style" not in _names(outsider.client().get("/api/v1/loras"))


def test_import_by_civitai_link_reports_unknown_models(member: Any, civitai: FakeUpstream) -> None:
    response = member.client().post(
        "/api/v1/loras/import", {"civitai_url": "https://civitai.com/models/404404"}, format="json"
    )
    assert response.status_code == 400 and "does not know that model" in response.json()["detail"]


def test_same_file_links_never_name_another_workspaces_private_lora(member: Any, outsider: Any, store: Any) -> None:
    """T3: the SHA-256 cross-link stays inside what each workspace can see, in every detail."""
    from models_catalog.normalize.types import UpstreamFile, UpstreamItem
    from models_catalog.services.upsert import entry_link_same_file, entry_upsert

    data = lora_bytes(seed=21)
    mine = member.client().post(
        "/api/v1/loras/import", {"file": buffer(data, "ours.safetensors"), "name": "Ours"}, format="multipart"
    )
    assert mine.status_code == 201, mine.content
    mine_id = mine.json()["lora"]["id"]
    theirs = outsider.client().post(
        "/api/v1/loras/import",
        {"file": buffer(data, "theirs.safetensors"), "name": "Theirs"},
        format="multipart",
    )
    assert theirs.status_code == 201, theirs.content
    theirs_id = theirs.json()["lora"]["id"]
    assert theirs_id != mine_id
    assert LoraAdapter.objects.get(pk=theirs_id).same_as_id is None, "linked only inside its own scope"
    assert theirs.json()["lora"]["same_as"] is None
    assert mine_id not in str(outsider.client().get(f"/api/v1/loras/{theirs_id}").content)

    # A later public sync of the same file: the public row links to no private row either.
    digest = LoraAdapter.objects.get(pk=mine_id).sha256
    file = UpstreamFile(name="pub.safetensors", size_bytes=len(data), sha256=digest, is_primary=True)
    item = UpstreamItem(
        kind="lora",
        source="civitai",
        external_id="77",
        external_version="7701",
        name="Public twin",
        family="sd15",
        files=[file],
    )
    public = entry_upsert(item=item).entry
    LoraAdapter.objects.filter(pk=public.pk).update(approved=True)
    assert LoraAdapter.objects.get(pk=public.pk).same_as_id is None
    for persona in (member, outsider):
        body = persona.client().get(f"/api/v1/loras/{public.pk}").json()
        assert body["same_as"] is None
        assert mine_id not in str(body) and theirs_id not in str(body)
        listing = str(persona.client().get("/api/v1/loras").json())
        other = theirs_id if persona is member else mine_id
        assert other not in listing, "another workspace's id appears nowhere in the list"
        suggestion = persona.client().post("/api/v1/suggest", {"prompt": "tstyle portrait"}, format="json")
        assert other not in str(suggestion.json())

    # A private copy made after the public row links to the public row, which its owner can open.
    LoraAdapter.objects.filter(pk=mine_id).update(same_as=None)
    entry = LoraAdapter.objects.get(pk=mine_id)
    LoraAdapter.objects.filter(pk=public.pk).update(created_at=entry.created_at.replace(year=2000))
    entry_link_same_file(entry)
    assert LoraAdapter.objects.get(pk=mine_id).same_as_id == public.pk
    assert member.client().get(f"/api/v1/loras/{mine_id}").json()["same_as"] == str(public.pk)
    # ...and the link disappears from the answer once the public row is hidden from the requester.
    LoraAdapter.objects.filter(pk=public.pk).update(hidden=True)
    assert member.client().get(f"/api/v1/loras/{mine_id}").json()["same_as"] is None


def test_models_filter_by_intent_through_its_suggested_family(owner: Any, catalog: dict[str, Any]) -> None:
    BaseModel.objects.create(
        name="Public XL", family="sdxl", source=Source.HUGGINGFACE, external_id="org/xl-base", approved=True
    )
    anime = Intent.objects.get(slug="anime")
    photo = Intent.objects.exclude(suggested_family=anime.suggested_family).first()
    assert photo is not None
    client = owner.client()
    by_family = {"sd15": ["Public SD 1.5"], "sdxl": ["Public XL"]}
    assert _names(client.get(f"/api/v1/models?intent={anime.slug}")) == by_family.get(anime.suggested_family, [])
    assert _names(client.get(f"/api/v1/models?intent={photo.slug}")) == by_family.get(photo.suggested_family, [])
    both = _names(client.get(f"/api/v1/models?intent={anime.slug},{photo.slug}"))
    assert both == sorted(by_family.get(anime.suggested_family, []) + by_family.get(photo.suggested_family, []))
    unknown = client.get("/api/v1/models?intent=no-such-intent")
    assert unknown.status_code == 400 and "no-such-intent" in unknown.json()["detail"]
    assert "/api/v1/intents" in unknown.json()["detail"]
    # The page's intent select filters the base-model tab the same way.
    html = owner.session_client().get(f"/models/?kind=models&intent={anime.slug}").content.decode()
    expected = by_family.get(anime.suggested_family, [])
    assert all(name in html for name in expected)
    assert all(name not in html for names in by_family.values() for name in names if name not in expected)
    assert 'id="catalog-intent"' in html
