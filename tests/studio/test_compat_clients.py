"""The official `replicate` and `openai` Python clients, pointed at a live Kizy server."""
from __future__ import annotations

import base64
import io
import os

import httpx
import openai
import pytest
import replicate
from PIL import Image

from studio.models import Generation
from tests.studio.test_webhooks import receiver_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live(live_server, settings):
    settings.ALLOWED_HOSTS = ["*"]  # live_server binds localhost on a random port
    os.environ.pop("REPLICATE_API_TOKEN", None)
    return live_server.url


def test_replicate_client_runs_a_model_and_gets_files(live, owner, demo_catalog):
    model_id = str(demo_catalog.models[0].pk)
    client = replicate.Client(api_token=owner.key, base_url=live)
    output = client.run(f"kizy/{model_id}", input={"prompt": "a lantern", "steps": 2, "seed": 5})
    [file] = output
    # The client wraps https:// outputs in FileOutput; this live test server speaks plain http, so the
    # output is the URL itself, fetched here exactly as FileOutput would (no credentials needed).
    data = file.read() if hasattr(file, "read") else httpx.get(file).content
    image = Image.open(io.BytesIO(data))
    assert image.size == (64, 64)
    prediction = client.predictions.list().results[0]
    assert prediction.status == "succeeded" and prediction.input["seed"] == 5
    again = client.predictions.get(prediction.id)
    assert again.output and again.output[0].startswith(live)


def test_replicate_client_create_wait_and_cancel(live, owner, demo_catalog):
    client = replicate.Client(api_token=owner.key, base_url=live)
    created = client.predictions.create(version=str(demo_catalog.models[0].pk), input={"prompt": "x", "steps": 2})
    created.wait()
    assert created.status == "succeeded" and len(created.output) == 1
    created.cancel()  # already finished: stays succeeded
    assert client.predictions.get(created.id).status == "succeeded"


def test_replicate_errors_are_readable(live, owner, demo_catalog):
    client = replicate.Client(api_token=owner.key, base_url=live)
    with pytest.raises(replicate.exceptions.ReplicateError) as raised:
        client.run(f"kizy/{demo_catalog.models[0].pk}", input={"prompt": "x", "width": 65, "height": 64})
    assert "multiple of 8" in str(raised.value)
    bad_key = replicate.Client(api_token=owner.key[:-1] + ("A" if owner.key[-1] != "A" else "B"), base_url=live)
    with pytest.raises(replicate.exceptions.ReplicateError) as raised:
        bad_key.predictions.list()
    assert "typo" in str(raised.value)


def test_openai_client_generates_images(live, owner, demo_catalog):
    client = openai.OpenAI(api_key=owner.key, base_url=f"{live}/v1")
    result = client.images.generate(model=str(demo_catalog.models[0].pk), prompt="a kite", n=2, size="64x64",
                                    response_format="b64_json")
    assert len(result.data) == 2
    assert Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).size == (64, 64)
    by_url = client.images.generate(prompt="a kite", size="64x64")
    assert by_url.data[0].url.startswith(live)
    assert Generation.objects.filter(source="openai").count() == 2


def test_openai_client_edits_an_image(live, owner, demo_catalog):
    client = openai.OpenAI(api_key=owner.key, base_url=f"{live}/v1")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 90, 40)).save(buffer, format="PNG")
    result = client.images.edit(image=("guide.png", buffer.getvalue(), "image/png"), prompt="autumn", size="64x64",
                                response_format="b64_json")
    assert Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).size == (64, 64)
    assert Generation.objects.get(source="openai").graph["nodes"]["generate"]["type"] == "image_to_image"


def test_openai_errors_use_openai_shape(live, owner, demo_catalog):
    client = openai.OpenAI(api_key=owner.key, base_url=f"{live}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(prompt="x", size="big")
    assert "1024x1024" in raised.value.message


def test_replicate_client_uploads_a_file_input_by_default(live, owner, demo_catalog, tmp_path):
    """`image=open(...)`: the client's default file encoding uploads to /v1/files and passes its link."""
    guide = tmp_path / "guide.png"
    Image.new("RGB", (64, 64), (20, 140, 90)).save(guide)
    client = replicate.Client(api_token=owner.key, base_url=live)
    with guide.open("rb") as handle:
        output = client.run(f"kizy/{demo_catalog.models[0].pk}", input={
            "prompt": "the same field in winter", "image": handle, "prompt_strength": 0.5,
            "num_inference_steps": 4, "guidance_scale": 3.5, "seed": 2})
    assert len(output) == 1
    generation = Generation.objects.get(source="replicate")
    node = generation.graph["nodes"]["generate"]
    assert node["type"] == "image_to_image"
    assert (node["inputs"]["strength"], node["inputs"]["steps"], node["inputs"]["guidance"]) == (0.5, 4, 3.5)
    assert generation.request["image"].startswith(f"ws/{owner.workspace.pk}/artifacts/")
    uploaded = client.files.get(client.files.create(guide).id)
    assert uploaded.content_type == "image/png" and uploaded.urls["get"].startswith(live)


def test_replicate_webhooks_carry_the_prediction_object(live, owner, demo_catalog, receiver_factory,  # noqa: F811
                                                        settings):
    from standardwebhooks import Webhook

    from studio.webhooks import workspace_secret

    settings.SITE_URL = live  # links in webhook bodies are built on KIZY_SITE_URL (there is no request)
    receiver = receiver_factory([])
    client = replicate.Client(api_token=owner.key, base_url=live)
    prediction = client.predictions.create(version=str(demo_catalog.models[0].pk),
                                           input={"prompt": "a kite", "num_inference_steps": 2, "seed": 1},
                                           webhook=receiver.url, webhook_events_filter=["start", "completed"])
    prediction.wait()
    bodies = [Webhook(workspace_secret(owner.workspace)).verify(body, headers) for headers, body in receiver.requests]
    assert [body["status"] for body in bodies] == ["processing", "succeeded"]
    final = bodies[-1]
    assert "type" not in final and final["id"] == prediction.id and final["input"]["steps"] == 2
    assert final["urls"]["get"] == f"{live}/v1/predictions/{prediction.id}"
    # The body is the very object the client reads, and its output links work. Each answer signs the
    # links anew (the expiry is part of the signature), so compare the files they point at.
    def files(output: list[str]) -> list[str]:
        return [link.split("?", 1)[0] for link in output]

    webhook_output = replicate.prediction.Prediction(**final).output
    assert files(webhook_output) == files(client.predictions.get(prediction.id).output)
    assert Image.open(io.BytesIO(httpx.get(final["output"][0]).content)).size == (64, 64)
