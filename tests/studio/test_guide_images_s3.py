"""An output used as the next guide image when files live on S3/R2 (moto's S3 server on loopback):
by the output's `key` (what the studio sends) and by its presigned URL (what API clients hold),
and never across workspaces (T3)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.site.test_storage import moto_endpoint, s3  # noqa: F401  (fixtures)
from tests.studio.test_generations_api import FAST, create

pytestmark = pytest.mark.django_db


def test_an_s3_output_is_the_next_guide_image_by_key_or_presigned_url(
        s3, owner, outsider, demo_catalog, django_capture_on_commit_callbacks):  # noqa: F811
    client = owner.client()
    first = create(client, django_capture_on_commit_callbacks, {"prompt": "a red fox", **FAST}).json()
    job = client.get(f"/api/v1/generations/{first['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    [output] = job["outputs"]
    assert output["key"].startswith(f"ws/{owner.workspace.pk}/")
    parts = urlsplit(output["url"])
    assert parts.path == f"/{s3}/{output['key']}" and "X-Amz-Signature" in parts.query  # a presigned S3 link

    for image in (output["key"], output["url"]):
        again = create(client, django_capture_on_commit_callbacks, {"prompt": "the same fox", "image": image, **FAST})
        assert again.status_code == 201, again.json()
        second = client.get(f"/api/v1/generations/{again.json()['id']}").json()
        assert second["status"] == "succeeded", second["error"]
        assert second["request"]["image"].startswith(f"ws/{owner.workspace.pk}/artifacts/")

    for image in (output["key"], output["url"]):
        stolen = outsider.client().post("/api/v1/generations", {"prompt": "x", "image": image}, format="json")
        assert stolen.status_code == 400
        assert "another workspace" in str(stolen.json()["errors"]["image"])


def test_other_web_addresses_are_still_not_fetched_on_s3(s3, owner, demo_catalog):  # noqa: F811
    response = owner.client().post("/api/v1/generations",
                                   {"prompt": "x", "image": "https://example.com/cat.png"}, format="json")
    assert response.status_code == 400
    assert "Other web addresses are not fetched" in str(response.json()["errors"]["image"])


def test_s3_download_links_save_the_file_instead_of_opening_it(
        s3, owner, demo_catalog, django_capture_on_commit_callbacks):  # noqa: F811
    import httpx

    client = owner.client()
    made = create(client, django_capture_on_commit_callbacks, {"prompt": "a red fox", **FAST}).json()
    [output] = client.get(f"/api/v1/generations/{made['id']}").json()["outputs"]
    with httpx.Client(trust_env=False) as http:
        saved = http.get(output["download_url"])
        shown = http.get(output["url"])
    assert saved.status_code == 200 and shown.status_code == 200
    assert saved.headers["content-disposition"] == f'attachment; filename="kizy-{made["id"][:8]}-1.png"'
    assert "content-disposition" not in shown.headers
    assert saved.content == shown.content
