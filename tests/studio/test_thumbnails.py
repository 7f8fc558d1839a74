"""Gallery thumbnails: a small WebP written when an image output is recorded, without metadata, and
used by the gallery tiles and the studio's Recent strip instead of the full-size image."""
from __future__ import annotations

import hashlib
import io
import re

import pytest
from django.test import Client
from PIL import Image

from gpu_workers.artifacts import artifact_key
from studio.engine import StorageArtifactStore
from studio.thumbnails import THUMBNAIL_SIDE, with_thumbnails
from tests.studio.test_generations_api import FAST, create

pytestmark = pytest.mark.django_db


def fetch(client, url: str) -> bytes:
    response = client.get(url.replace("http://testserver", ""))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_a_big_output_gets_a_small_webp_without_exif(owner):
    image = Image.new("RGB", (2048, 1536), (30, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "Secret camera"  # Make
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    png = buffer.getvalue()
    key = artifact_key(str(owner.workspace.pk), hashlib.sha256(png).hexdigest(), "png")
    store = StorageArtifactStore()
    store.put(key, png, "image/png")

    [item] = with_thumbnails([{"kind": "image", "key": key, "width": 2048, "height": 1536}],
                             workspace_id=str(owner.workspace.pk))
    assert item["thumbnail_key"].startswith(f"ws/{owner.workspace.pk}/artifacts/")
    assert item["thumbnail_key"].endswith(".webp")
    data = store.get(item["thumbnail_key"])
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE * 3 // 4) == (item["thumbnail_width"],
                                                                          item["thumbnail_height"])
        assert not thumb.getexif() and "exif" not in thumb.info
    assert len(data) < len(png) / 10


def test_a_finished_job_has_a_thumbnail_used_by_the_gallery_and_the_recent_strip(
        owner, demo_catalog, django_capture_on_commit_callbacks):
    response = create(owner.client(), django_capture_on_commit_callbacks, {"prompt": "a small boat", **FAST})
    job = owner.client().get(f"/api/v1/generations/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    [output] = job["outputs"]
    assert output["thumbnail_url"] != output["url"] and "signature=" in output["thumbnail_url"]
    browser = Client()
    browser.force_login(owner.user)
    with Image.open(io.BytesIO(fetch(browser, output["thumbnail_url"]))) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (64, 64)  # never scaled up

    thumbnail_path = re.escape(output["thumbnail_url"].replace("http://testserver", "").split("?")[0])
    gallery = browser.get("/gallery").content.decode()
    assert re.search(r'<img src="http://testserver' + thumbnail_path + r"\?", gallery)
    recent = browser.get("/studio/recent").content.decode()
    assert 'id="studio-recent"' in recent and "a small boat" in recent
    assert re.search(r'<img src="http://testserver' + thumbnail_path + r"\?", recent)
