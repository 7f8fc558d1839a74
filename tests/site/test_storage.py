"""Private files (T5, U4): short-lived signed links on the filesystem backend, presigned URLs on S3
(moto's S3 server on loopback), safe content types, and names that are never reused."""

from __future__ import annotations

import importlib.util
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from kizy_site.storage import sign_file_url, signed_url, verify_signature

WORKSPACE_A = str(uuid.uuid4())
WORKSPACE_B = str(uuid.uuid4())


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def body(response) -> bytes:
    try:
        return b"".join(response.streaming_content)
    finally:
        response.close()


# --- filesystem backend -------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "kizy_site.storage.PrivateFileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    return tmp_path


def test_a_signed_link_downloads_the_image_inline_with_nosniff(client, media) -> None:
    name = default_storage.save(f"workspaces/{WORKSPACE_A}/outputs/cat.png", ContentFile(png_bytes()))
    url = default_storage.url(name)
    assert url.startswith(f"/files/workspaces/{WORKSPACE_A}/outputs/")
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "attachment" not in response.get("Content-Disposition", "")
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert body(response) == png_bytes()


@pytest.mark.parametrize("filename", ["page.html", "logo.svg", "script.js", "notes"])
def test_anything_a_browser_could_run_is_a_download(client, media, filename: str) -> None:
    name = default_storage.save(
        f"workspaces/{WORKSPACE_A}/uploads/{filename}", ContentFile(b"<script>alert(1)</script>")
    )
    response = client.get(default_storage.url(name))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    body(response)


def test_a_link_expires(client, media) -> None:
    name = default_storage.save(f"workspaces/{WORKSPACE_A}/outputs/cat.png", ContentFile(png_bytes()))
    issued = time.time()
    assert client.get(sign_file_url(name, ttl=60, now=issued - 120)).status_code == 403  # issued 2 min ago
    url = sign_file_url(name, ttl=60, now=issued)
    query = parse_qs(urlsplit(url).query)
    expires, signature = query["expires"][0], query["signature"][0]
    assert verify_signature(name, expires, signature, now=issued + 59)
    assert not verify_signature(name, expires, signature, now=issued + 61)
    response = client.get(url)
    assert response.status_code == 200
    body(response)


def test_a_tampered_or_borrowed_signature_is_403(client, media) -> None:
    mine = default_storage.save(f"workspaces/{WORKSPACE_A}/outputs/cat.png", ContentFile(png_bytes()))
    theirs = default_storage.save(f"workspaces/{WORKSPACE_B}/outputs/secret.png", ContentFile(png_bytes()))
    url = default_storage.url(mine)
    path, query = url.split("?")
    signature = parse_qs(query)["signature"][0]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")

    refused = [
        client.get(f"{path}?{query.replace(signature, flipped)}"),  # tampered signature
        client.get(f"/files/{theirs}?{query}"),  # another workspace's file with my signature
        client.get(f"{path}?{query.replace('expires=', 'expires=9')}"),  # stretched expiry
        client.get(path),  # no signature at all
    ]
    for response in refused:
        assert response.status_code == 403
        assert b"invalid or has expired" in response.content
    assert client.get(url).status_code == 200


def test_a_missing_file_with_a_valid_signature_is_404(client, media) -> None:
    assert client.get(sign_file_url(f"workspaces/{WORKSPACE_A}/outputs/gone.png")).status_code == 404


def test_signed_url_honours_a_custom_ttl(media) -> None:
    # Called before anything else touched default_storage in this configuration.
    expires = int(parse_qs(urlsplit(signed_url("workspaces/x/y.png", ttl=60)).query)["expires"][0])
    assert abs(expires - (time.time() + 60)) < 5


def test_saving_twice_under_one_name_never_overwrites(media) -> None:
    name = f"workspaces/{WORKSPACE_A}/outputs/result.png"
    first = default_storage.save(name, ContentFile(b"first"))
    second = default_storage.save(name, ContentFile(b"second"))
    assert first != second
    assert default_storage.open(first).read() == b"first"
    assert default_storage.open(second).read() == b"second"
    assert second.startswith(f"workspaces/{WORKSPACE_A}/outputs/")


# --- S3 backend, against moto's S3 server on loopback -------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


S3_TTL = 900


def fresh_settings_module():
    """kizy_site/settings.py executed again under the current environment (not put in sys.modules)."""
    import kizy_site.settings as current

    spec = importlib.util.spec_from_file_location("kizy_site.settings_probe", current.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s3(settings, monkeypatch, moto_endpoint: str) -> str:
    """default_storage configured exactly as settings.py does when KIZY_S3_BUCKET is set."""
    bucket = f"kizy-test-{uuid.uuid4().hex[:12]}"
    for name, value in {
        "KIZY_S3_BUCKET": bucket,
        "KIZY_S3_ENDPOINT_URL": moto_endpoint,
        "KIZY_S3_ACCESS_KEY_ID": "testing",
        "KIZY_S3_SECRET_ACCESS_KEY": "testing",
        "KIZY_S3_REGION": "us-east-1",
        "KIZY_SIGNED_URL_TTL": str(S3_TTL),
    }.items():
        monkeypatch.setenv(name, value)
    production_like = vars(fresh_settings_module())
    assert production_like["STORAGES"]["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    settings.STORAGES = production_like["STORAGES"]
    settings.KIZY_SIGNED_URL_TTL = production_like["KIZY_SIGNED_URL_TTL"]
    return bucket


def test_s3_presigned_urls_expire_after_the_ttl_and_carry_the_workspace_prefix(s3: str) -> None:
    name = default_storage.save(f"workspaces/{WORKSPACE_A}/outputs/cat.png", ContentFile(png_bytes()))
    url = default_storage.url(name)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == [str(S3_TTL)]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert parts.path == f"/{s3}/{name}" and name.startswith(f"workspaces/{WORKSPACE_A}/")

    with httpx.Client(trust_env=False) as http:
        fetched = http.get(url)
        assert fetched.status_code == 200
        assert fetched.content == png_bytes()
        unsigned = http.get(f"{parts.scheme}://{parts.netloc}{parts.path}")
        assert unsigned.status_code == 403


def test_s3_signed_url_honours_a_custom_ttl(s3: str) -> None:
    name = default_storage.save(f"workspaces/{WORKSPACE_A}/outputs/cat.png", ContentFile(png_bytes()))
    assert parse_qs(urlsplit(signed_url(name, ttl=60)).query)["X-Amz-Expires"] == ["60"]
    assert parse_qs(urlsplit(signed_url(name)).query)["X-Amz-Expires"] == [str(S3_TTL)]


def test_s3_saving_twice_under_one_name_never_overwrites(s3: str) -> None:
    name = f"workspaces/{WORKSPACE_A}/outputs/result.png"
    first = default_storage.save(name, ContentFile(b"first"))
    second = default_storage.save(name, ContentFile(b"second"))
    assert first != second
    assert second.startswith(f"workspaces/{WORKSPACE_A}/outputs/")
    assert default_storage.open(first).read() == b"first"
    assert default_storage.open(second).read() == b"second"
