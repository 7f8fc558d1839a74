"""Request fields on every surface (native, Replicate, OpenAI): unknown names are 400s that name the
field and list the allowed ones; Replicate's and OpenAI's own names map onto Kizy's."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from studio.models import Generation
from tests.studio.isolation import make_generation

pytestmark = pytest.mark.django_db

FAST = {"prompt": "a fox", "steps": 2, "width": 64, "height": 64}


def post(client, capture, path, body, **kwargs):
    with capture(execute=True):
        return client.post(path, body, **kwargs)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- native API ---------------------------------------------------------------------------------

def test_native_misspelled_field_is_named_with_a_suggestion(owner, demo_catalog):
    response = owner.client().post("/api/v1/generations", {**FAST, "negative_promt": "blur"}, format="json")
    assert response.status_code == 400
    [message] = response.json()["errors"]["negative_promt"]
    assert "did you mean 'negative_prompt'" in message and "prompt, negative_prompt, image" in message
    assert Generation.objects.count() == 0


def test_native_several_unknown_fields_are_each_named(owner, demo_catalog):
    response = owner.client().post("/api/v1/generations", {**FAST, "cfg": 7, "sampler": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"cfg", "sampler"}


def test_a_stored_request_can_be_posted_again_as_it_is(owner, demo_catalog, django_capture_on_commit_callbacks):
    client = owner.client()
    first = post(client, django_capture_on_commit_callbacks, "/api/v1/generations", {**FAST, "seed": 4},
                 format="json").json()
    record = {k: v for k, v in first["request"].items() if v is not None}
    record["loras"] = [{"id": lora["id"], "weight": lora["weight"]} for lora in record["loras"]]
    record.pop("aspect_ratio", None)
    again = post(client, django_capture_on_commit_callbacks, "/api/v1/generations", record, format="json")
    assert again.status_code == 201, again.json()
    assert again.json()["request"]["seed"] == 4


def test_the_studio_form_fields_are_all_accepted(owner, demo_catalog, django_capture_on_commit_callbacks):
    """Exactly the multipart fields static/js/studio.js `buildRequest` sends."""
    form = {"prompt": "a fox", "negative_prompt": "blur", "model": str(demo_catalog.models[0].pk), "loras": "[]",
            "detailers": "upscale_x2", "aspect_ratio": "1:1", "num_outputs": "1", "seed": "3", "steps": "2",
            "guidance": "5", "scheduler": "euler", "strength": "0.5",
            "image": io.BytesIO(png_bytes())}
    form["image"].name = "guide.png"
    response = post(owner.client(), django_capture_on_commit_callbacks, "/api/v1/generations", form,
                    format="multipart")
    assert response.status_code == 201, response.json()


# --- Replicate ----------------------------------------------------------------------------------

def test_replicate_names_map_onto_kizy_names(owner, demo_catalog, django_capture_on_commit_callbacks):
    body = {"version": str(demo_catalog.models[0].pk), "input": {
        "prompt": "a fox", "num_inference_steps": 3, "guidance_scale": 4.5, "negative_prompt": "blur",
        "num_outputs": 2, "width": 64, "height": 64, "seed": 9}}
    response = post(owner.client(), django_capture_on_commit_callbacks, "/v1/predictions", body, format="json")
    assert response.status_code == 201, response.json()
    record = Generation.objects.get().request
    assert (record["steps"], record["guidance"], record["negative_prompt"], record["num_outputs"]) == (
        3, 4.5, "blur", 2)


def test_replicate_prompt_strength_is_the_guide_strength(owner, demo_catalog, django_capture_on_commit_callbacks):
    import base64

    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    body = {"version": str(demo_catalog.models[0].pk),
            "input": {**FAST, "image": image, "prompt_strength": 0.3}}
    response = post(owner.client(), django_capture_on_commit_callbacks, "/v1/predictions", body, format="json")
    assert response.status_code == 201, response.json()
    assert Generation.objects.get().graph["nodes"]["generate"]["inputs"]["strength"] == 0.3


def test_replicate_unknown_input_is_a_400_naming_it(owner, demo_catalog):
    body = {"version": str(demo_catalog.models[0].pk), "input": {**FAST, "guidance_scal": 4}}
    response = owner.client().post("/v1/predictions", body, format="json")
    assert response.status_code == 400
    text = str(response.json())
    assert "guidance_scal" in text and "guidance_scale" in text and "num_inference_steps" in text


def test_replicate_alias_and_own_name_together_is_a_400(owner, demo_catalog):
    body = {"version": str(demo_catalog.models[0].pk), "input": {**FAST, "num_inference_steps": 4}}
    response = owner.client().post("/v1/predictions", body, format="json")
    assert response.status_code == 400 and "not both" in str(response.json())


def test_replicate_unknown_top_level_field_is_a_400(owner, demo_catalog):
    body = {"version": str(demo_catalog.models[0].pk), "input": FAST, "webhook_filter": ["completed"]}
    response = owner.client().post("/v1/predictions", body, format="json")
    assert response.status_code == 400 and "webhook_events_filter" in str(response.json())


@pytest.mark.parametrize("cursor", ["abc", "-5", "1.5"])
def test_a_bad_cursor_is_a_400(owner, cursor):
    response = owner.client().get(f"/v1/predictions?cursor={cursor}")
    assert response.status_code == 400 and "cursor" in str(response.json())


def test_a_good_cursor_pages(owner):
    for _ in range(3):
        make_generation(owner)
    assert len(owner.client().get("/v1/predictions?cursor=2").json()["results"]) == 1


def test_files_upload_and_get(owner):
    client = owner.client()
    response = client.post("/v1/files", {"content": io.BytesIO(png_bytes()), "metadata": '{"who": "me"}'},
                           format="multipart")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["content_type"] == "image/png" and created["metadata"] == {"who": "me"}
    assert created["urls"]["get"].startswith("http://testserver/files/ws/")
    fetched = client.get(created["urls"]["get"].replace("http://testserver", ""))
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(b"".join(fetched.streaming_content))).size == (64, 64)
    again = client.get(f"/v1/files/{created['id']}")
    assert again.status_code == 200 and again.json()["size"] == created["size"]


def test_files_refuse_what_is_not_an_image(owner):
    response = owner.client().post("/v1/files", {"content": io.BytesIO(b"#!/bin/sh\necho hi\n")},
                                   format="multipart")
    assert response.status_code == 400 and "PNG, JPEG or WebP" in str(response.json())
    assert owner.client().post("/v1/files", {}, format="json").status_code == 400


def test_files_of_another_workspace_are_not_found(owner, outsider):
    created = owner.client().post("/v1/files", {"content": io.BytesIO(png_bytes())}, format="multipart").json()
    assert outsider.client().get(f"/v1/files/{created['id']}").status_code == 404
    assert owner.client().get("/v1/files/not-a-file").status_code == 404


# --- OpenAI -------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)  # OpenAI's call waits for the job, which runs once committed
@pytest.mark.parametrize("name", ["dall-e-2", "dall-e-3", "gpt-image-1"])
def test_openai_model_names_mean_the_workspace_default(name, owner, demo_catalog):
    response = owner.client().post("/v1/images/generations",
                                   {"model": name, "prompt": "a kite", "size": "64x64", "quality": "standard"},
                                   format="json")
    assert response.status_code == 200, response.json()
    assert Generation.objects.get().model_ref == str(demo_catalog.models[0].pk)


def test_openai_unknown_model_is_still_a_400(owner, demo_catalog):
    response = owner.client().post("/v1/images/generations", {"model": "midjourney", "prompt": "x"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"


def test_openai_mask_is_refused_clearly(owner, demo_catalog):
    response = owner.client().post("/v1/images/edits", {
        "image": io.BytesIO(png_bytes()), "mask": io.BytesIO(png_bytes()), "prompt": "autumn"}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "mask" and "Leave out mask" in error["message"]
    assert Generation.objects.count() == 0


def test_openai_unknown_field_is_named(owner, demo_catalog):
    response = owner.client().post("/v1/images/generations", {"prompt": "x", "style": "vivid"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "style" and "response_format" in error["message"]


def test_workflow_body_with_a_misspelled_field_is_a_400(owner):
    graph = {"nodes": {"n": {"type": "const_int", "inputs": {"value": 1}}}, "outputs": ["n"]}
    response = owner.client().post("/api/v1/workflows", {"graph": graph, "webhok": "https://x.example"},
                                   format="json")
    assert response.status_code == 400
    assert "did you mean 'webhook'" in response.json()["errors"]["webhok"][0]


def test_webhook_endpoint_with_a_misspelled_field_is_a_400(owner):
    response = owner.client().post("/api/v1/webhooks",
                                   {"url": "https://hooks.example.com/k", "event": ["completed"]}, format="json")
    assert response.status_code == 400
    assert "did you mean 'events'" in response.json()["errors"]["event"][0]


def test_webhook_endpoint_is_created_through_the_api(owner, monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))])
    response = owner.client().post("/api/v1/webhooks", {"url": "https://hooks.example.com/k",
                                                        "events": ["output", "completed"], "id": "ignored"},
                                   format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["events"] == ["completed", "output"]
    assert owner.client().get("/api/v1/webhooks").json()["results"][0]["url"] == "https://hooks.example.com/k"
