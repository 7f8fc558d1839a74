"""The generation API on the real tiny SD 1.5 pipeline: request → graph → worker → stored images."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from studio.models import Generation
from tests.studio.conftest import png_data_uri

pytestmark = pytest.mark.django_db

FAST = {"steps": 2, "width": 64, "height": 64}


def create(client, capture, body, **headers):
    with capture(execute=True):
        response = client.post("/api/v1/generations", body, format="json", **headers)
    return response


def fetch_image(client, url: str) -> Image.Image:
    response = client.get(url.replace("http://testserver", ""))
    assert response.status_code == 200
    return Image.open(io.BytesIO(b"".join(response.streaming_content)))


def test_prompt_to_image(owner, demo_catalog, django_capture_on_commit_callbacks, client):
    response = create(owner.client(), django_capture_on_commit_callbacks,
                      {"prompt": "a red fox in the snow", "seed": 7, **FAST})
    assert response.status_code == 201, response.json()
    job = owner.client().get(f"/api/v1/generations/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    [output] = job["outputs"]
    assert fetch_image(client, output["url"]).size == (64, 64)
    assert job["request"]["seed"] == 7 and job["request"]["model"] == str(demo_catalog.models[0].pk)
    record = job["reproducibility"]
    assert record["nodes"]["generate"]["type"] == "text_to_image"
    assert "torch" in record["libraries"] or "torch" in str(record)


def test_lora_changes_the_output_and_leaving_it_out_restores_the_base(owner, demo_catalog,
                                                                      django_capture_on_commit_callbacks):
    lora = demo_catalog.loras[0]
    body = {"prompt": "a lighthouse", "seed": 3, **FAST}
    client = owner.client()
    shas = []
    for loras in ([], [{"id": str(lora.pk), "weight": 1.0}], []):
        response = create(client, django_capture_on_commit_callbacks, {**body, "loras": loras})
        job = client.get(f"/api/v1/generations/{response.json()['id']}").json()
        assert job["status"] == "succeeded", job["error"]
        shas.append(job["outputs"][0]["sha256"])
    assert shas[0] != shas[1], "the LoRA should change the image"
    assert shas[0] == shas[2], "without the LoRA the base output comes back exactly"


def test_auto_loras_say_why(owner, demo_catalog, django_capture_on_commit_callbacks):
    response = create(owner.client(), django_capture_on_commit_callbacks,
                      {"prompt": "a soft watercolor painting of a harbour", "loras": "auto", **FAST})
    assert response.status_code == 201, response.json()
    picks = response.json()["request"]["loras"]
    assert picks and all(pick["reason"] for pick in picks)


def test_guide_image_and_upscale(owner, demo_catalog, django_capture_on_commit_callbacks, client):
    response = create(owner.client(), django_capture_on_commit_callbacks,
                      {"prompt": "same scene at night", "image": png_data_uri(), "strength": 0.5,
                       "detailers": ["upscale_x2"], **FAST})
    assert response.status_code == 201, response.json()
    job = owner.client().get(f"/api/v1/generations/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    assert job["nodes"]["generate"]["type"] == "image_to_image"
    assert fetch_image(client, job["outputs"][0]["url"]).size == (128, 128)


def test_multipart_upload_and_several_outputs(owner, demo_catalog, django_capture_on_commit_callbacks):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format="JPEG")
    buffer.seek(0)
    buffer.name = "guide.jpg"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client().post("/api/v1/generations", {"prompt": "x", "image": buffer, "num_outputs": 2,
                                                                "steps": 2}, format="multipart")
    assert response.status_code == 201, response.json()
    job = owner.client().get(f"/api/v1/generations/{response.json()['id']}").json()
    assert job["status"] == "succeeded" and len(job["outputs"]) == 2
    assert job["outputs"][0]["sha256"] != job["outputs"][1]["sha256"]  # seed, seed + 1


@pytest.mark.django_db(transaction=True)
def test_prefer_wait_returns_the_finished_job(owner, demo_catalog):
    response = owner.client().post("/api/v1/generations", {"prompt": "a boat", **FAST}, format="json",
                                   HTTP_PREFER="wait=30")
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded" and response.json()["outputs"]


def test_idempotency_key(owner, demo_catalog):
    client = owner.client()
    first = client.post("/api/v1/generations", {"prompt": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/v1/generations", {"prompt": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and Generation.objects.count() == 1


@pytest.mark.parametrize(("body", "field", "words"), [
    ({}, "prompt", "required"),
    ({"prompt": "x", "width": 100, "height": 64}, "width", "multiple of 8"),
    ({"prompt": "x", "width": 64}, "width", "both width and height"),
    ({"prompt": "x", "aspect_ratio": "5:4"}, "aspect_ratio", "valid choice"),
    ({"prompt": "x", "num_outputs": 9}, "num_outputs", "less than or equal to 4"),
    ({"prompt": "x", "seed": -1}, "seed", "greater than or equal to 0"),
    ({"prompt": "x", "steps": 0}, "steps", "greater than or equal to 1"),
    ({"prompt": "x", "detailers": ["sparkles"]}, "detailers", "Unknown detailer"),
    ({"prompt": "x", "detailers": {"upscale": 3}}, "detailers", "2 or 4"),
    ({"prompt": "x", "detailers": ["controlnet"]}, "detailers", "add an image"),
    ({"prompt": "x", "scheduler": "warp"}, "scheduler", "valid choice"),
    ({"prompt": "x", "model": "00000000-0000-0000-0000-000000000000"}, "model", "GET /api/v1/models"),
    ({"prompt": "x", "loras": [{"id": "00000000-0000-0000-0000-000000000000"}]}, "loras", "GET /api/v1/loras"),
    ({"prompt": "x", "loras": "some"}, "loras", "auto"),
    ({"prompt": "x", "image": "data:image/png;base64,AAAA"}, "image", "could not be read"),
    ({"prompt": "x", "image": "https://example.com/cat.png"}, "image", "not fetched"),
])
def test_bad_values_name_the_field(owner, demo_catalog, body, field, words):
    response = owner.client().post("/api/v1/generations", body, format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert field in errors, errors
    assert words in str(errors[field]), errors
    assert Generation.objects.count() == 0


def test_another_workspaces_private_lora_or_file_is_refused(owner, outsider, demo_catalog,
                                                            django_capture_on_commit_callbacks):
    from models_catalog.models import LoraAdapter

    private = demo_catalog.loras[0]
    LoraAdapter.objects.filter(pk=private.pk).update(workspace=owner.workspace)
    response = outsider.client().post("/api/v1/generations", {"prompt": "x", "loras": [{"id": str(private.pk)}]},
                                      format="json")
    assert response.status_code == 400 and "loras" in response.json()["errors"]
    made = create(owner.client(), django_capture_on_commit_callbacks, {"prompt": "x", **FAST})
    key = Generation.objects.get(pk=made.json()["id"]).outputs[0]["key"]
    stolen = outsider.client().post("/api/v1/generations", {"prompt": "x", "image": f"/files/{key}"}, format="json")
    assert stolen.status_code == 400 and "another workspace" in str(stolen.json()["errors"]["image"])


def test_own_output_can_be_the_next_guide_image(owner, demo_catalog, django_capture_on_commit_callbacks):
    client = owner.client()
    first = create(client, django_capture_on_commit_callbacks, {"prompt": "x", **FAST}).json()
    url = client.get(f"/api/v1/generations/{first['id']}").json()["outputs"][0]["url"]
    second = create(client, django_capture_on_commit_callbacks, {"prompt": "y", "image": url, **FAST})
    assert second.status_code == 201, second.json()
    assert client.get(f"/api/v1/generations/{second.json()['id']}").json()["status"] == "succeeded"


def test_list_filters_and_cancel(owner, demo_catalog):
    client = owner.client()
    made = client.post("/api/v1/generations", {"prompt": "a quiet lake"}, format="json").json()
    client.post("/api/v1/generations", {"prompt": "a loud city"}, format="json")
    assert [g["id"] for g in client.get("/api/v1/generations?q=lake").json()["results"]] == [made["id"]]
    assert client.get("/api/v1/generations?status=succeeded").json()["count"] == 0
    canceled = client.post(f"/api/v1/generations/{made['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert client.get("/api/v1/generations?status=canceled").json()["count"] == 1
