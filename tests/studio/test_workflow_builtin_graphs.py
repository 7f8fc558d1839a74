"""Graphs of built-in nodes over the workflow API, on the demo catalog (tiny random-weight models)."""
from __future__ import annotations

import io
from pathlib import Path

import imageio
import pytest

from studio.models import Generation

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_video_files() -> None:
    from models_catalog.demo import ensure_tiny_models

    ensure_tiny_models(("video",))


@pytest.fixture
def video_model(db, tiny_video_files) -> str:
    from models_catalog.demo import load_demo_catalog

    [model] = load_demo_catalog(generate=False, families=("video",)).models
    assert model.family == "video" and model.is_demo and "tiny" in model.name
    return str(model.pk)


def _download(client, url: str) -> bytes:
    response = client.get(url.replace("http://testserver", ""))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def _mp4_frames(data: bytes, tmp_path: Path) -> list:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    return [frame for frame in imageio.get_reader(str(path), format="FFMPEG")]


def test_a_text_to_video_graph_on_the_demo_catalog_returns_an_mp4(
    owner, video_model, django_capture_on_commit_callbacks, client, tmp_path
):
    graph = {
        "nodes": {
            "model": {"type": "load_model", "inputs": {"ref": video_model}},
            "clip": {"type": "text_to_video", "inputs": {
                "model": {"node": "model", "output": "model"}, "prompt": "a boat on a lake",
                "frames": 4, "width": 64, "height": 64, "steps": 2, "seed": 3, "fps": 8}},
            "save": {"type": "save_video", "inputs": {"video": {"node": "clip", "output": "video"}}},
        },
        "outputs": ["save"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client().post("/api/v1/workflows", {"graph": graph}, format="json")
    assert response.status_code == 201, response.json()
    job = owner.client().get(f"/api/v1/workflows/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    [output] = job["outputs"]
    assert (output["kind"], output["content_type"], output["frames"]) == ("video", "video/mp4", 4)
    assert output["key"].startswith(f"ws/{owner.workspace.pk}/") and output["key"].endswith(".mp4")
    mp4 = _download(client, output["url"])
    assert mp4[4:8] == b"ftyp"  # an MP4 container
    frames = _mp4_frames(mp4, tmp_path)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    assert job["reproducibility"]["nodes"]["clip"]["type"] == "text_to_video"
    assert Generation.objects.get(pk=job["id"]).status == "succeeded"


def test_make_demo_models_builds_once_and_keeps_what_is_there(tiny_video_files) -> None:
    from django.core.management import call_command

    from models_catalog.demo import tiny_dir, upscaler_path

    out = io.StringIO()
    call_command("make_demo_models", "--family", "video", stdout=out)
    assert upscaler_path().is_file() and (tiny_dir() / "video" / "model_index.json").is_file()
    before = {p: p.stat().st_mtime_ns for p in [upscaler_path(), *(tiny_dir() / "video").rglob("*.safetensors")]}
    again = io.StringIO()
    call_command("make_demo_models", "--family", "video", stdout=again)
    assert "video: already there" in again.getvalue() and "upscaler: already there" in again.getvalue()
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rewritten


def _run(persona, graph, capture):
    with capture(execute=True):
        response = persona.client().post("/api/v1/workflows", {"graph": graph}, format="json")
    assert response.status_code == 201, response.json()
    return persona.client().get(f"/api/v1/workflows/{response.json()['id']}").json()


def _inverted(key: str) -> dict:
    return {
        "nodes": {
            "in": {"type": "load_image", "inputs": {"key": key}},
            "inv": {"type": "invert_image", "inputs": {"image": {"node": "in", "output": "image"}}},
        },
        "outputs": ["inv"],
    }


def _first_pixel(client, output) -> tuple:
    from PIL import Image

    return Image.open(io.BytesIO(_download(client, output["url"]))).convert("RGB").getpixel((0, 0))


def test_load_image_takes_a_data_uri_an_output_key_or_a_file_link(owner, django_capture_on_commit_callbacks, client):
    from tests.studio.conftest import png_data_uri

    job = _run(owner, _inverted(png_data_uri(16, 8, (200, 30, 30))), django_capture_on_commit_callbacks)
    assert job["status"] == "succeeded", job["error"]
    assert job["graph"]["nodes"]["in"]["inputs"]["key"].startswith(f"ws/{owner.workspace.pk}/")  # stored, by key
    [output] = job["outputs"]
    assert (output["width"], output["height"]) == (16, 8) and _first_pixel(client, output) == (55, 225, 225)

    # Chain: the first job's output `key`, then its signed link, feed the next graphs.
    by_key = _run(owner, _inverted(output["key"]), django_capture_on_commit_callbacks)
    assert by_key["status"] == "succeeded", by_key["error"]
    assert _first_pixel(client, by_key["outputs"][0]) == (200, 30, 30)
    by_link = _run(owner, _inverted(output["url"]), django_capture_on_commit_callbacks)
    assert by_link["status"] == "succeeded", by_link["error"]
    assert _first_pixel(client, by_link["outputs"][0]) == (200, 30, 30)


def test_bad_input_images_are_refused_before_queuing_with_the_other_problems(
    owner, outsider, django_capture_on_commit_callbacks
):
    from tests.studio.conftest import png_data_uri

    theirs = _run(outsider, _inverted(png_data_uri()), django_capture_on_commit_callbacks)["outputs"][0]
    graph = {
        "nodes": {
            "a": {"type": "load_image", "inputs": {"key": theirs["key"]}},
            "b": {"type": "load_image", "inputs": {"key": "data:image/png;base64,bm90IGFuIGltYWdl"}},
            "c": {"type": "load_image", "inputs": {"key": f"ws/{owner.workspace.pk}/artifacts/nope.png"}},
            "d": {"type": "load_image", "inputs": {"key": "https://example.com/cat.png"}},
            "e": {"type": "invert_image", "inputs": {}},
        },
        "outputs": ["a", "b", "c", "d", "e"],
    }
    response = owner.client().post("/api/v1/workflows", {"graph": graph}, format="json")
    assert response.status_code == 400
    errors = {(e["node"], e["port"]): e for e in response.json()["errors"]}
    assert errors[("a", "key")]["code"] == "invalid_image"
    assert "another workspace" in errors[("a", "key")]["message"]
    assert errors[("b", "key")]["code"] == "invalid_image" and "could not be read" in errors[("b", "key")]["message"]
    assert errors[("c", "key")]["code"] == "unknown_file"
    assert "not fetched" in errors[("d", "key")]["message"]
    assert errors[("e", "image")]["code"] == "missing_input"
    assert Generation.objects.filter(workspace=owner.workspace).count() == 0


def test_an_image_to_video_graph_animates_an_image_given_as_a_data_uri(
    owner, video_model, django_capture_on_commit_callbacks, client, tmp_path
):
    from tests.studio.conftest import png_data_uri

    graph = {
        "nodes": {
            "model": {"type": "load_model", "inputs": {"ref": video_model}},
            "still": {"type": "load_image", "inputs": {"key": png_data_uri(64, 64, (20, 120, 200))}},
            "clip": {"type": "image_to_video", "inputs": {
                "model": {"node": "model", "output": "model"}, "image": {"node": "still", "output": "image"},
                "frames": 4, "steps": 2, "strength": 0.6, "seed": 1}},
            "save": {"type": "save_video", "inputs": {"video": {"node": "clip", "output": "video"}, "fps": 4}},
        },
        "outputs": ["save"],
    }
    job = _run(owner, graph, django_capture_on_commit_callbacks)
    assert job["status"] == "succeeded", job["error"]
    [output] = job["outputs"]
    frames = _mp4_frames(_download(client, output["url"]), tmp_path)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)


def test_the_worked_graph_of_the_api_docs_is_valid_on_the_demo_catalog(owner, demo_catalog) -> None:
    import json
    import re

    from accounts.workspace_auth import WorkspaceAuth
    from studio.services import graph_problems

    auth = WorkspaceAuth(workspace=owner.workspace, scopes=frozenset({"generate"}), user=owner.user)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = docs.split("## Workflows (node graphs)", 1)[1]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    model = next(m for m in demo_catalog.models if m.family == "sd15")
    lora = next(lo for lo in demo_catalog.loras if lo.family == "sd15")
    worked = blocks[0].replace("<catalog id of a model>", str(model.pk)).replace("<catalog id of a LoRA>", str(lora.pk))
    assert graph_problems(graph=json.loads(worked)["graph"], auth=auth) == []
    photo = json.loads(blocks[1].replace("data:image/png;base64,iVBORw0KGgo...", f"ws/{owner.workspace.pk}/a.png"))
    assert graph_problems(graph=photo["graph"], auth=auth) == []


@pytest.fixture
def modal_without_token(settings, monkeypatch, tmp_path):
    from studio.backends import compute_backend

    settings.KIZY_COMPUTE_BACKEND = "modal"
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))
    compute_backend.cache_clear()
    yield
    compute_backend.cache_clear()


def test_the_modal_backend_without_a_token_fails_the_job_at_once_saying_how_to_fix_it(
    owner, modal_without_token, django_capture_on_commit_callbacks
):
    from tests.studio.conftest import png_data_uri

    job = _run(owner, _inverted(png_data_uri()), django_capture_on_commit_callbacks)
    assert job["status"] == "failed"
    assert "modal token new" in job["error"] and "MODAL_TOKEN_ID" in job["error"]
    row = Generation.objects.get(pk=job["id"])
    assert row.lease_owner == "" and row.attempts == 1 and row.completed_at is not None  # not left to the lease


def test_references_the_workspace_cannot_use_are_unknown_before_queuing(owner, outsider, demo_catalog) -> None:
    import uuid

    from models_catalog.models import LoraAdapter

    theirs = next(lo for lo in demo_catalog.loras if lo.family == "sd15")
    theirs.pk, theirs.workspace = None, outsider.workspace  # a private copy in another workspace (T3)
    theirs.external_id = "private/their-style"
    theirs.save()
    model = next(m for m in demo_catalog.models if m.family == "sd15")
    graph = {
        "nodes": {
            "gone": {"type": "load_model", "inputs": {"ref": str(uuid.uuid4())}},
            "model": {"type": "load_model", "inputs": {"ref": str(model.pk)}},
            "style": {"type": "apply_lora", "inputs": {"model": {"node": "model", "output": "model"},
                                                       "lora": {"ref": str(theirs.pk)}}},
            "draw": {"type": "controlnet", "inputs": {"model": {"node": "style", "output": "model"},
                                                      "guide_image": {"node": "img", "output": "image"},
                                                      "controlnet": "hf:someone/controlnet"}},
            "img": {"type": "make_image", "inputs": {"width": 64, "height": 64}},
        },
        "outputs": ["gone", "draw"],
    }
    response = owner.client().post("/api/v1/workflows", {"graph": graph}, format="json")
    assert response.status_code == 400
    errors = {(e["node"], e["port"]): e for e in response.json()["errors"] if e["code"] == "unknown_reference"}
    assert set(errors) == {("gone", "ref"), ("style", "lora"), ("draw", "controlnet")}, response.json()
    assert "GET /api/v1/models" in errors[("gone", "ref")]["message"]
    assert "GET /api/v1/loras" in errors[("style", "lora")]["message"]
    assert LoraAdapter.objects.filter(pk=theirs.pk, workspace=outsider.workspace).exists()
    assert Generation.objects.filter(workspace=owner.workspace).count() == 0
