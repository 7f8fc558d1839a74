"""U1-U3: every malicious or broken upload is refused with a clear 400 and nothing is written, neither
in storage nor in the database; good uploads are re-encoded without metadata."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from training.models import Dataset, DatasetItem, TrainingJob

from .helpers import mp4, png, smooth_png, symlink_entry, upload, webm, zip_of, zip_with_info

pytestmark = pytest.mark.django_db


def stored_files(media_root: Path) -> list[Path]:
    return [p for p in (media_root / "ws").rglob("*") if p.is_file()] if (media_root / "ws").exists() else []


def post_files(persona, *files, url: str = "/api/v1/datasets", **fields):
    return persona.client().post(url, {"images": list(files), **fields}, format="multipart")


def assert_refused(response, clean_media: Path, *fragments: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "upload_refused"
    text = (body["detail"] + " " + " ".join(f"{e['file']}: {e['problem']}" for e in body["errors"])).lower()
    for fragment in fragments:
        assert fragment.lower() in text, (fragment, text)
    assert stored_files(clean_media) == []
    assert (Dataset.objects.count(), DatasetItem.objects.count(), TrainingJob.objects.count()) == (0, 0, 0)
    return body


GOOD = ("good.png", png(seed=1))


@pytest.mark.parametrize(
    ("name", "entries", "fragments"),
    [
        ("traversal.zip", [GOOD, ("../evil.png", png(seed=2))], ["../evil.png", "'..'"]),
        ("nested-traversal.zip", [("photos/../../evil.png", png(seed=2))], ["..", "outside"]),
        ("absolute.zip", [GOOD, ("/etc/cron.d/evil.png", png(seed=2))], ["absolute path"]),
        ("windows.zip", [("C:/Windows/evil.png", png(seed=2))], ["absolute path"]),
        ("backslash.zip", [("..\\evil.png", png(seed=2))], ["'..'"]),
        ("nested.zip", [GOOD, ("inner.zip", zip_of([GOOD]))], ["inner.zip", "zip inside a zip"]),
        (
            "notes.zip",
            [GOOD, ("notes.txt", b"just some words\n")],
            ["notes.txt", "not an image or a video", "text"],
        ),
        ("empty.zip", [], ["holds no files"]),
    ],
)
def test_bad_zip_entries_are_refused(owner, clean_media, name, entries, fragments):
    assert_refused(post_files(owner, upload(name, zip_of(entries))), clean_media, name, *fragments)


def test_duplicate_names_in_a_zip_are_refused(owner, clean_media):
    with pytest.warns(UserWarning):  # zipfile itself warns while we build the bad archive
        data = zip_of([("cat.png", png(seed=1)), ("cat.png", png(seed=2))])
    assert_refused(post_files(owner, upload("dupes.zip", data)), clean_media, "cat.png", "appears twice")


def test_case_and_unicode_variants_count_as_duplicates(owner, clean_media):
    data = zip_of([("Café.png", png(seed=1)), ("cafe\u0301.PNG".replace("cafe\u0301", "CAFÉ"), png(seed=2))])
    assert_refused(post_files(owner, upload("dupes.zip", data)), clean_media, "appears twice")


def test_symlinks_in_a_zip_are_refused(owner, clean_media):
    data = zip_with_info(
        [(zipfile.ZipInfo("good.png"), png(seed=1)), symlink_entry("link.png", "/etc/passwd")]
    )
    assert_refused(post_files(owner, upload("links.zip", data)), clean_media, "link.png", "symbolic link")


def test_encrypted_entries_are_refused(owner, clean_media):
    data = bytearray(zip_of([("secret.png", png(seed=1))], compression=zipfile.ZIP_STORED))
    data[6] |= 0x1  # general-purpose flag bit 0 ("encrypted"), local header and central directory
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x1
    data = bytes(data)
    assert_refused(
        post_files(owner, upload("locked.zip", data)), clean_media, "encrypted", "without a password"
    )


def test_too_many_entries(owner, clean_media, settings):
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"max_zip_entries": 5}
    data = zip_of([(f"{i}.png", png(seed=i)) for i in range(6)])
    assert_refused(post_files(owner, upload("many.zip", data)), clean_media, "6 entries", "limit is 5")


def test_too_many_bytes(owner, clean_media, settings):
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"max_zip_bytes": 30_000}
    data = zip_of([(f"{i}.png", png(seed=i)) for i in range(3)], compression=zipfile.ZIP_STORED)
    assert_refused(post_files(owner, upload("big.zip", data)), clean_media, "unpacks to", "split it")


def test_one_entry_too_big(owner, clean_media, settings):
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"max_entry_bytes": 5_000}
    assert_refused(
        post_files(owner, upload("big.zip", zip_of([GOOD]))), clean_media, "good.png", "limit per file"
    )


def test_zip_bomb_ratio_is_refused_before_unpacking(owner, clean_media):
    bomb = zip_of([GOOD, ("bomb.png", b"\0" * (8 * 1024 * 1024))])
    assert len(bomb) < 100_000
    assert_refused(
        post_files(owner, upload("bomb.zip", bomb)), clean_media, "bomb.png", "compressed", "zip bomb"
    )


def test_a_zip_header_that_lies_about_sizes_is_refused(owner, clean_media):
    data = bytearray(zip_of([("liar.png", png(seed=3))], compression=zipfile.ZIP_STORED))
    # Shrink the declared uncompressed size in the central directory (the local header is not consulted).
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    body = assert_refused(post_files(owner, upload("liar.zip", bytes(data))), clean_media, "liar.png")
    assert any("zip" in e["problem"] for e in body["errors"])


def test_decompression_bomb_image_is_refused_before_decoding(owner, clean_media):
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")  # 400 megapixels in ~50 KB
    assert len(buffer.getvalue()) < 200_000
    assert_refused(
        post_files(owner, upload("huge.png", buffer.getvalue())),
        clean_media,
        "huge.png",
        "megapixels",
        "scale it down",
    )


def test_pillow_bomb_warning_is_an_error(owner, clean_media, settings, monkeypatch):
    # Our cap raised above Pillow's own: Pillow's DecompressionBomb check must still stop the decode.
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"max_pixels": 10**12}
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert_refused(
        post_files(owner, upload("bomb.png", png(64, 64))), clean_media, "bomb.png", "decompression bomb"
    )


@pytest.mark.parametrize(
    ("name", "data", "fragments"),
    [
        ("cat.png", b"<html><script>alert(1)</script></html>", ["cat.png", "disguised", "html"]),
        ("cat.jpg", zip_of([GOOD]), ["cat.jpg", "disguised", "zip"]),
        ("clip.mp4", png(), ["clip.mp4", "disguised"]),
        ("report.pdf", b"%PDF-1.7\n...", ["report.pdf", "not an image or a video", "pdf"]),
        ("anim.gif", b"GIF89a" + b"\0" * 32, ["anim.gif", "gif is not supported"]),
        ("photo.heic", b"\0\0\0\x18ftypheic" + b"\0" * 32, ["photo.heic", "heic"]),
        ("broken.png", png()[:200], ["broken.png", "damaged or truncated", "export it again"]),
        ("empty.png", b"", ["empty.png", "empty"]),
        ("tiny.png", png(8, 8), ["tiny.png", "only 8×8", "the smallest accepted is 32 px on the short side"]),
        ("bad.mp4", b"\0\0\0\x18ftypisom" + b"\0" * 200, ["bad.mp4", "could not be read", "mp4"]),
    ],
)
def test_broken_or_disguised_files_are_refused(owner, clean_media, name, data, fragments):
    assert_refused(post_files(owner, upload(name, data)), clean_media, *fragments)


def test_one_bad_file_refuses_the_whole_upload(owner, clean_media):
    response = post_files(
        owner,
        upload("a.png", png(seed=1)),
        upload("b.png", png(seed=2)),
        upload("virus.exe", b"MZ\x90\x00" + b"\0" * 64),
    )
    body = assert_refused(response, clean_media, "virus.exe", "program")
    assert [e["file"] for e in body["errors"]] == ["virus.exe"]


def test_every_problem_is_listed(owner, clean_media):
    response = post_files(owner, upload("x.txt", b"hello"), upload("y.png", b"not really"))
    body = assert_refused(response, clean_media)
    assert {e["file"] for e in body["errors"]} == {"x.txt", "y.png"}


def test_no_files(owner, clean_media):
    assert_refused(
        owner.client().post("/api/v1/datasets", {"name": "x"}, format="multipart"),
        clean_media,
        "no files were sent",
    )


def test_training_endpoint_refuses_the_same_way(owner, clean_media, sd15_model):
    response = post_files(
        owner,
        upload("set.zip", zip_of([GOOD, ("../x.png", png(seed=4))])),
        url="/api/v1/trainings",
        name="Mira",
        description="my cat",
    )
    assert_refused(response, clean_media, "'..'")


def test_good_upload_is_re_encoded_without_metadata(owner, clean_media, media_root):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x8825] = {2: (48.0, 51.0, 0.0), 1: "N"}  # GPS latitude
    jpeg = smooth_png(80, 48, seed=5, fmt="JPEG", exif=exif.tobytes())
    assert b"SpyCam" in jpeg
    response = post_files(
        owner,
        upload("phone.jpg", jpeg),
        upload(
            "set.zip",
            zip_of(
                [
                    ("a/b.webp", smooth_png(64, 64, seed=6, fmt="WEBP")),
                    ("__MACOSX/a/._b.webp", b"junk"),
                    (".DS_Store", b"junk"),
                ]
            ),
        ),
    )
    assert response.status_code == 201, response.content
    items = list(DatasetItem.objects.order_by("position"))
    assert [i.source_name for i in items] == ["phone.jpg", "set.zip → a/b.webp"]
    phone = items[0]
    assert (phone.width, phone.height) == (48, 80)  # EXIF orientation applied
    stored = (media_root / phone.key).read_bytes()
    assert b"SpyCam" not in stored and b"Exif" not in stored
    image = Image.open(io.BytesIO(stored))
    assert (
        image.format == "PNG"
        and not image.getexif()
        and "exif" not in image.info
        and "icc_profile" not in image.info
    )
    assert phone.key.startswith(f"ws/{owner.workspace.pk}/datasets/")


def test_identical_pictures_are_kept_once(owner, clean_media):
    data = png(seed=9)
    response = post_files(owner, upload("a.png", data), upload("b.png", data))
    assert response.status_code == 201
    assert len(response.json()["items"]) == 1
    assert "identical" in response.json()["notices"][0]


def test_videos_are_frame_sampled(owner, clean_media, settings):
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"frames_per_video": 4}
    response = post_files(owner, upload("clip.mp4", mp4()))
    assert response.status_code == 201, response.content
    items = response.json()["items"]
    assert len(items) == 4
    assert all(i["kind"] == "video_frame" and "clip.mp4 (frame at" in i["source_name"] for i in items)
    assert {(i["width"], i["height"]) for i in items} == {(96, 64)}
    assert all("video still" in i["caption"] for i in items)


def test_webm_videos_are_frame_sampled_too(owner, clean_media, settings):
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"frames_per_video": 4}
    clip = webm()
    assert clip[:4] == b"\x1a\x45\xdf\xa3"  # an EBML (Matroska/WebM) file
    response = post_files(owner, upload("clip.webm", clip))
    assert response.status_code == 201, response.content
    items = response.json()["items"]
    assert len(items) == 4 and all("clip.webm (frame at" in i["source_name"] for i in items)
    assert {(i["width"], i["height"]) for i in items} == {(96, 64)}
    assert len({i["id"] for i in items}) == 4 and all(i["kind"] == "video_frame" for i in items)


def test_overlong_videos_are_refused(owner, clean_media, settings):
    settings.KIZY_TRAINING_UPLOAD_LIMITS = {"max_video_seconds": 1.0}
    assert_refused(
        post_files(owner, upload("long.mp4", mp4(frames=12, fps=6))), clean_media, "long.mp4", "trim it"
    )


def test_more_loose_files_than_django_parses_get_the_usual_refusal(owner, clean_media, settings):
    from django.test import Client

    from training.uploads import UploadLimits

    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == UploadLimits.from_settings().max_files == 200
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 5  # the same path as 201 files, with fewer files to build
    files = [upload(f"{i}.png", png(seed=i)) for i in range(6)]
    expected = ("Too many files in one upload", "at most 5 at a time", "put them in a zip")
    assert_refused(post_files(owner, *files), clean_media, *expected)
    assert_refused(post_files(owner, *files, url="/api/v1/trainings", name="Mira"), clean_media, *expected)

    # The browser's upload (session + CSRF header): refused the same way, not "Bad Request".
    session = Client(enforce_csrf_checks=True)
    session.force_login(owner.user)
    token = session.get("/training/new").cookies["csrftoken"].value
    api = session.post(
        "/api/v1/datasets", {"images": [upload(f"{i}.png", png(seed=i)) for i in range(6)]}, HTTP_X_CSRFTOKEN=token
    )
    assert_refused(api, clean_media, *expected)

    # The plain form (no JavaScript) shows the message on the page.
    page = session.post(
        "/training/new",
        {"images": [upload(f"{i}.png", png(seed=i)) for i in range(6)], "csrfmiddlewaretoken": token},
    )
    assert page.status_code == 400 and "Too many files in one upload" in page.content.decode()
    assert stored_files(clean_media) == [] and Dataset.objects.count() == 0

    # Within the limit the form still needs its CSRF token, and works with it.
    fine = [upload(f"{i}.png", smooth_png(64, 64, seed=i)) for i in range(3)]
    assert session.post("/training/new", {"images": fine}).status_code == 403
    fine = [upload(f"{i}.png", smooth_png(64, 64, seed=i)) for i in range(3)]
    done = session.post("/training/new", {"images": fine, "csrfmiddlewaretoken": token})
    assert done.status_code == 302 and Dataset.objects.get().items.count() == 3
    dataset = Dataset.objects.get()
    more = session.post(
        f"/training/datasets/{dataset.pk}/images",
        {"images": [upload(f"x{i}.png", png(seed=i)) for i in range(6)], "csrfmiddlewaretoken": token},
        follow=True,
    )
    assert "Too many files in one upload" in more.content.decode() and dataset.items.count() == 3
