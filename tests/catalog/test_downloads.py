"""Downloads into the model store: hash, pickle, size and header checks (M1-M3), resume, full installs."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError

from gpu_workers.models.store import ModelStore
from models_catalog.downloads import DownloadRefused, DownloadSpec, HashMismatch, TooLarge, download_file
from models_catalog.models import Download, LoraAdapter, Status
from models_catalog.services.imports import lora_import_from_civitai, lora_import_from_huggingface
from models_catalog.services.install import download_create, download_run
from models_catalog.services.sync import catalog_sync

from .conftest import civitai_lora_model, hf_model_info, hf_sibling, lora_bytes, sha256
from .upstream import FakeUpstream, Response, file_response, json_response


def _spec(upstream: FakeUpstream, dest: Path, data: bytes, **kwargs: Any) -> DownloadSpec:
    return DownloadSpec(url=f"{upstream.url}/file", dest=dest, **{"expected_sha256": sha256(data), **kwargs})


def _left_over(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []


def test_good_file_is_kept_with_progress(upstream: FakeUpstream, tmp_path: Path) -> None:
    data = lora_bytes()
    upstream.add_handler("/file", file_response(data))
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "ok.safetensors"
    with httpx.Client() as client:
        download_file(
            _spec(upstream, dest, data, expected_size=len(data)),
            client=client,
            progress=lambda done, total: seen.append((done, total)),
        )
    assert dest.read_bytes() == data and seen[-1] == (len(data), len(data))
    assert _left_over(dest) == ["ok.safetensors"]


def test_hash_mismatch_is_refused_and_nothing_is_kept(upstream: FakeUpstream, tmp_path: Path) -> None:
    data = lora_bytes()
    upstream.add_handler("/file", file_response(data))
    dest = tmp_path / "bad.safetensors"
    with httpx.Client() as client, pytest.raises(HashMismatch, match="does not match.*not kept"):
        download_file(_spec(upstream, dest, data, expected_sha256="0" * 64), client=client)
    assert _left_over(dest) == []


def test_pickle_files_are_refused_before_any_request(upstream: FakeUpstream, tmp_path: Path) -> None:
    with httpx.Client() as client:
        for name in ("model.ckpt", "model.pt", "pytorch_lora_weights.bin", "weights.pth"):
            with pytest.raises(DownloadRefused, match="pickle.*arbitrary code"):
                download_file(DownloadSpec(url=f"{upstream.url}/file", dest=tmp_path / name), client=client)
    assert upstream.requests == []


def test_a_pickle_disguised_as_safetensors_is_refused(upstream: FakeUpstream, tmp_path: Path) -> None:
    data = pickle.dumps({"state_dict": [1, 2, 3]})
    upstream.add_handler("/file", file_response(data))
    dest = tmp_path / "sneaky.safetensors"
    with httpx.Client() as client, pytest.raises(DownloadRefused, match="pickle file disguised"):
        download_file(_spec(upstream, dest, data), client=client)
    assert _left_over(dest) == []


def test_oversize_files_are_refused(upstream: FakeUpstream, tmp_path: Path) -> None:
    data = lora_bytes()
    upstream.add_handler("/file", file_response(data))
    dest = tmp_path / "big.safetensors"
    with httpx.Client() as client:
        with pytest.raises(TooLarge, match="over this site's download limit"):
            download_file(_spec(upstream, dest, data, expected_size=10_000, max_bytes=1_000), client=client)
        assert upstream.requests == [], "refused on the declared size, before downloading"
        with pytest.raises(TooLarge):  # the source declared nothing: the stream itself is capped
            download_file(_spec(upstream, dest, data, max_bytes=len(data) - 1), client=client)
    assert _left_over(dest) == []


def test_malformed_safetensors_are_refused_before_loading(upstream: FakeUpstream, tmp_path: Path) -> None:
    huge_header = struct.pack("<Q", 2**40) + b"{}"
    bad_offsets = lora_bytes()
    header_len = struct.unpack("<Q", bad_offsets[:8])[0]
    truncated = bad_offsets[: 8 + header_len + 10]  # header promises more tensor bytes than the file holds
    with httpx.Client() as client:
        for label, data in (("huge", huge_header), ("offsets", truncated)):
            upstream.add_handler("/file", file_response(data))
            dest = tmp_path / f"{label}.safetensors"
            with pytest.raises(DownloadRefused, match="not a valid safetensors file"):
                download_file(_spec(upstream, dest, data), client=client)
            assert _left_over(dest) == []


def test_an_interrupted_download_resumes_with_a_range_request(upstream: FakeUpstream, tmp_path: Path) -> None:
    data = lora_bytes(width=256)
    upstream.add_handler("/file", file_response(data))
    dest = tmp_path / "resumed.safetensors"
    half = len(data) // 2
    dest.with_name(dest.name + ".part").write_bytes(data[:half])
    with httpx.Client() as client:
        download_file(_spec(upstream, dest, data, expected_size=len(data)), client=client)
    assert upstream.requests[0].headers["range"] == f"bytes={half}-"
    assert dest.read_bytes() == data and _left_over(dest) == ["resumed.safetensors"]


def test_a_server_that_ignores_range_makes_the_download_start_over(upstream: FakeUpstream, tmp_path: Path) -> None:
    data = lora_bytes()
    upstream.add("/file", Response(200, data, {"Content-Type": "application/octet-stream"}))
    dest = tmp_path / "restart.safetensors"
    dest.with_name(dest.name + ".part").write_bytes(b"garbage that is not the start of the file")
    with httpx.Client() as client:
        download_file(_spec(upstream, dest, data), client=client)
    assert dest.read_bytes() == data


@pytest.mark.django_db
def test_civitai_install_lands_where_workers_resolve_it(
    civitai: FakeUpstream, store: Path, django_capture_on_commit_callbacks: Any
) -> None:
    data = lora_bytes(kohya=True)
    api = f"{civitai.url}/api/v1"
    model = civitai_lora_model(model_id=77, version_id=7701, data=data, api_url=api)
    civitai.add("/api/v1/models", json_response({"items": [model], "metadata": {}}))
    civitai.add_handler("/api/v1/download/models/7701", file_response(data))
    catalog_sync(source="civitai")
    lora = LoraAdapter.objects.get(external_version="7701")
    with django_capture_on_commit_callbacks(execute=True):
        download = download_create(entry=lora)
    download.refresh_from_db()
    lora.refresh_from_db()
    assert download.state == Download.State.INSTALLED, download.message
    assert download.bytes_done == download.bytes_total == len(data)
    assert lora.status == Status.INSTALLED and lora.store_ref == "civitai:7701"
    assert (lora.lora_format, lora.detected_family) == ("kohya", "sd15")
    assert civitai.requests_to("/api/v1/download/models/7701")[0].headers["authorization"].startswith("Bearer ")
    resolved = ModelStore(store, allow_downloads=False).resolve(lora.store_ref)
    assert resolved.read_bytes() == data


@pytest.mark.django_db
def test_a_pickle_only_version_fails_with_the_reason(
    civitai: FakeUpstream, store: Path, django_capture_on_commit_callbacks: Any
) -> None:
    data = b"\x80\x04pickle"
    model = civitai_lora_model(
        model_id=78, version_id=7801, data=data, api_url=f"{civitai.url}/api/v1", file_name="old-style.ckpt"
    )
    civitai.add("/api/v1/models", json_response({"items": [model], "metadata": {}}))
    catalog_sync(source="civitai")
    lora = LoraAdapter.objects.get(external_version="7801")
    with django_capture_on_commit_callbacks(execute=True):
        download = download_create(entry=lora)
    download.refresh_from_db()
    lora.refresh_from_db()
    assert download.state == Download.State.FAILED and "arbitrary code" in download.message
    assert lora.status == Status.FAILED and civitai.requests_to("/api/v1/download/models/7801") == []


@pytest.mark.django_db
def test_hugging_face_install_uses_the_hub_cache_layout(
    huggingface: FakeUpstream, store: Path, team: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = lora_bytes(family="sdxl")
    repo, revision = "someone/pixel-lora", "89abcdef0123456789abcdef0123456789abcdef"
    huggingface.add(
        f"/api/models/{repo}",
        json_response(
            hf_model_info(
                repo,
                sha=revision,
                tags=["lora", "base_model:adapter:stabilityai/stable-diffusion-xl-base-1.0"],
                siblings=[hf_sibling("pytorch_lora_weights.safetensors", data)],
            )
        ),
    )
    huggingface.add_handler(f"/{repo}/resolve/{revision}/pytorch_lora_weights.safetensors", file_response(data))
    with django_capture_on_commit_callbacks(execute=True):
        result = lora_import_from_huggingface(workspace=team, user=None, repo_id=repo)
    lora = LoraAdapter.objects.get(pk=result.lora.pk)
    assert lora.status == Status.INSTALLED, lora.status_message
    assert lora.store_ref == f"hf:{repo}/pytorch_lora_weights.safetensors@{revision}"
    assert lora.workspace == team and lora.family == "sdxl"
    resolved = ModelStore(store, allow_downloads=False).resolve(lora.store_ref)
    assert resolved.read_bytes() == data
    assert (store / "hf" / "models--someone--pixel-lora" / "blobs" / sha256(data)).is_file()


@pytest.mark.django_db
def test_a_second_copy_of_the_same_file_is_linked_not_downloaded(
    civitai: FakeUpstream, store: Path, team: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = lora_bytes(seed=3)
    api = f"{civitai.url}/api/v1"
    civitai.add(
        "/api/v1/models/90",
        json_response(civitai_lora_model(model_id=90, version_id=9001, data=data, api_url=api)),
    )
    civitai.add(
        "/api/v1/models/91",
        json_response(civitai_lora_model(model_id=91, version_id=9101, data=data, api_url=api)),
    )
    civitai.add_handler("/api/v1/download/models/9001", file_response(data))
    with django_capture_on_commit_callbacks(execute=True):
        first = lora_import_from_civitai(workspace=team, user=None, url="https://civitai.com/models/90")
    with django_capture_on_commit_callbacks(execute=True):
        second = lora_import_from_civitai(
            workspace=team, user=None, url="https://civitai.com/models/91?modelVersionId=9101"
        )
    second_lora = LoraAdapter.objects.get(pk=second.lora.pk)
    assert second_lora.status == Status.INSTALLED
    assert second_lora.same_as_id == first.lora.pk, "cross-linked by SHA-256"
    assert civitai.requests_to("/api/v1/download/models/9101") == []


@pytest.mark.django_db
def test_download_run_is_safe_to_repeat(
    civitai: FakeUpstream, store: Path, team: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = lora_bytes(seed=4)
    civitai.add(
        "/api/v1/models/95",
        json_response(civitai_lora_model(model_id=95, version_id=9501, data=data, api_url=f"{civitai.url}/api/v1")),
    )
    civitai.add_handler("/api/v1/download/models/9501", file_response(data))
    with django_capture_on_commit_callbacks(execute=True):
        result = lora_import_from_civitai(workspace=team, user=None, url="https://civitai.com/models/95")
    assert result.download is not None
    again = download_run(download_id=str(result.download.pk))
    assert again.state == Download.State.INSTALLED
    assert len(civitai.requests_to("/api/v1/download/models/9501")) == 1


@pytest.mark.django_db
def test_imports_refuse_content_above_the_rating_limit(civitai: FakeUpstream, settings: Any, team: Any) -> None:
    settings.KIZY_CATALOG_NSFW_MAX = 1
    civitai.add(
        "/api/v1/models/96",
        json_response(
            civitai_lora_model(
                model_id=96, version_id=9601, data=lora_bytes(), api_url=f"{civitai.url}/api/v1", nsfw_level=8
            )
        ),
    )
    with pytest.raises(ValidationError, match="content limit"):
        lora_import_from_civitai(workspace=team, user=None, url="https://civitai.com/models/96")


def _public_entry(civitai: FakeUpstream, *, model_id: int, version_id: int, data: bytes, kind: str) -> Any:
    """A synced, approved public CivitAI entry whose file is served over loopback."""
    from models_catalog.normalize.civitai import version_item
    from models_catalog.services.upsert import entry_upsert

    api = f"{civitai.url}/api/v1"
    payload = civitai_lora_model(model_id=model_id, version_id=version_id, data=data, api_url=api)
    if kind == "model":
        payload["type"] = "Checkpoint"
    item = version_item(payload, payload["modelVersions"][0], api_base=api, nsfw_max=16)
    assert item is not None
    entry = entry_upsert(item=item).entry
    type(entry).objects.filter(pk=entry.pk).update(approved=True)
    civitai.add_handler(f"/api/v1/download/models/{version_id}", file_response(data))
    return entry


@pytest.mark.parametrize("kind", ["lora", "model"])
def test_artists_install_a_public_entry_and_watch_its_progress(
    kind: str,
    civitai: FakeUpstream,
    member: Any,
    viewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = lora_bytes(seed=30)
    entry = _public_entry(civitai, model_id=300, version_id=30001, data=data, kind=kind)
    base = f"/api/v1/{kind}s/{entry.pk}"
    before = member.client().get(base).json()
    assert before["status"] == "available" and before["install"] is None and before["ready"] is False

    refused = viewer.client().post(f"{base}/install")
    assert refused.status_code == 403 and "generate" in refused.json()["detail"]
    assert civitai.requests_to("/api/v1/download/models/30001") == []

    with django_capture_on_commit_callbacks(execute=True):
        queued = member.client().post(f"{base}/install")
    assert queued.status_code == 202, queued.content
    assert queued.json()["queued"] is True and queued.json()["install"]["state"] == "queued"
    detail = member.client().get(base).json()
    assert detail["status"] == "installed" and detail["ready"] is True
    assert detail["install"]["state"] == "installed" and detail["install"]["percent"] == 100
    assert detail["install"]["bytes_done"] == len(data)
    assert type(entry).objects.get(pk=entry.pk).store_ref == "civitai:30001"
    again = member.client().post(f"{base}/install")
    assert again.status_code == 200 and again.json()["queued"] is False
    assert len(civitai.requests_to("/api/v1/download/models/30001")) == 1, "installed once"


def test_install_refusals_say_why(
    civitai: FakeUpstream, member: Any, outsider: Any, team: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from models_catalog.models import BaseModel, Source

    private = LoraAdapter.objects.create(
        name="Team only",
        family="sd15",
        source=Source.CIVITAI,
        external_id="5",
        external_version="55",
        workspace=team,
    )
    missing = outsider.client().post(f"/api/v1/loras/{private.pk}/install")
    assert missing.status_code == 404 and "No LoRA" in missing.json()["detail"]
    unapproved = LoraAdapter.objects.create(
        name="Unreviewed", family="sd15", source=Source.CIVITAI, external_id="6", external_version="66"
    )
    assert member.client().post(f"/api/v1/loras/{unapproved.pk}/install").status_code == 404
    local = BaseModel.objects.create(
        name="Local", family="sd15", source=Source.LOCAL, external_id="tiny/sd15", approved=True
    )
    refused = member.client().post(f"/api/v1/models/{local.pk}/install")
    assert refused.status_code == 400 and "no download source" in refused.json()["detail"]
    withdrawn = LoraAdapter.objects.create(
        name="Gone",
        family="sd15",
        source=Source.CIVITAI,
        external_id="7",
        external_version="77",
        approved=True,
        status=Status.WITHDRAWN,
    )
    gone = member.client().post(f"/api/v1/loras/{withdrawn.pk}/install")
    assert gone.status_code == 400 and "withdrawn upstream" in gone.json()["detail"]


def test_a_civitai_file_without_a_published_sha256_is_refused_unless_a_curator_overrides(
    civitai: FakeUpstream, team: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = lora_bytes(seed=50)
    payload = civitai_lora_model(model_id=500, version_id=50001, data=data, api_url=f"{civitai.url}/api/v1")
    del payload["modelVersions"][0]["files"][0]["hashes"]["SHA256"]
    civitai.add("/api/v1/models/500", json_response(payload))
    civitai.add_handler("/api/v1/download/models/50001", file_response(data))
    with django_capture_on_commit_callbacks(execute=True):
        result = lora_import_from_civitai(workspace=team, user=None, url="https://civitai.com/models/500")
    lora = LoraAdapter.objects.get(pk=result.lora.pk)
    assert lora.status == Status.FAILED and not lora.store_ref
    assert "publishes no SHA-256" in lora.status_message and "curator" in lora.status_message
    assert Download.objects.get(lora=lora).state == Download.State.FAILED
    assert civitai.requests_to("/api/v1/download/models/50001") == [], "nothing fetched unverified"

    LoraAdapter.objects.filter(pk=lora.pk).update(allow_unverified=True)
    with django_capture_on_commit_callbacks(execute=True):
        download_create(entry=LoraAdapter.objects.get(pk=lora.pk))
    lora.refresh_from_db()
    assert lora.status == Status.INSTALLED and lora.store_ref == "civitai:50001"


def test_lowering_the_rating_limit_hides_rows_synced_above_it(
    civitai: FakeUpstream, settings: Any, member: Any, team: Any
) -> None:
    from models_catalog import access
    from models_catalog.models import BaseModel, Source

    settings.KIZY_CATALOG_NSFW_MAX = 16
    BaseModel.objects.create(name="Base", family="sd15", source=Source.HUGGINGFACE, external_id="o/b", approved=True)
    mature = LoraAdapter.objects.create(
        name="Mature style",
        family="sd15",
        source=Source.CIVITAI,
        external_id="8",
        external_version="88",
        approved=True,
        nsfw_level=1 | 8,
        trigger_words=["grimdark"],
    )
    mild = LoraAdapter.objects.create(
        name="Mild style",
        family="sd15",
        source=Source.CIVITAI,
        external_id="9",
        external_version="99",
        approved=True,
        nsfw_level=1 | 2,
    )
    client = member.client()
    names = sorted(item["name"] for item in client.get("/api/v1/loras").json()["results"])
    assert names == ["Mature style", "Mild style"]

    settings.KIZY_CATALOG_NSFW_MAX = 2  # the operator lowers the limit; nothing is re-synced
    names = sorted(item["name"] for item in client.get("/api/v1/loras").json()["results"])
    assert names == ["Mild style"]
    assert client.get(f"/api/v1/loras/{mature.pk}").status_code == 404
    assert client.get(f"/api/v1/loras/{mild.pk}").status_code == 200
    assert mature.pk not in set(access.lora_ids_visible_to(team))
    suggestion = client.post("/api/v1/suggest", {"prompt": "a grimdark knight"}, format="json").json()
    assert all(lora["name"] != "Mature style" for lora in suggestion["loras"])
    settings.KIZY_CATALOG_NSFW_MAX = 0  # unrated only
    assert client.get(f"/api/v1/loras/{mild.pk}").status_code == 404
