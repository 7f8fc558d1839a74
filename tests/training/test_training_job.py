"""Train 20 steps on the tiny SD 1.5 model from a small zip, through the API, and use the result."""

from __future__ import annotations

import hashlib
import json
import socket

import numpy as np
import pytest
import torch
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.storage import default_storage
from django.db import connection

from gpu_workers.models.store import ModelStore
from kizy_site.asgi import application
from models_catalog.models import LoraAdapter
from models_catalog.services.intents import intents_seed
from studio.engine import StorageArtifactStore
from studio.models import WebhookDelivery, WebhookEndpoint
from training import runner
from training.models import TrainingJob

from .conftest import FAST_PARAMS
from .helpers import smooth_png, upload, zip_of

ZIP = zip_of([(f"mira/{i}.png", smooth_png(64 + 16 * (i % 2), 64, seed=10 + i)) for i in range(4)])


def close_this_threads_connection() -> None:
    """Run through sync_to_async: closes the ORM thread's connection, which PostgreSQL's test
    database teardown would otherwise find still open."""
    connection.close()


def start_training(persona, **fields):
    data = {
        "images": [upload("mira.zip", ZIP)],
        "name": "Mira watercolor",
        "goal_type": "style",
        "description": "soft watercolor painting with wet paper texture",
        "params": json.dumps(FAST_PARAMS),
        **fields,
    }
    return persona.client().post("/api/v1/trainings", data, format="multipart")


# Trainings run in committed transactions, as in a worker: the lease heartbeat writes from its own thread.
TRANSACTIONAL = pytest.mark.django_db(transaction=True)


@TRANSACTIONAL
def test_train_twenty_steps_from_a_zip(owner, outsider, sd15_model, tiny_model_store, monkeypatch):
    """One training (it takes seconds), then everything a user would notice about its result."""
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(
        "studio.tasks.deliver_webhook.delay", lambda delivery_id: None
    )  # deliveries: studio's tests
    WebhookEndpoint.objects.create(workspace=owner.workspace, url="https://hooks.example.com/kizy", events=[])
    intents_seed()  # the seeded intents, in case an earlier transactional test flushed them
    response = start_training(owner, webhook="https://hooks.example.com/one-off")
    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get(pk=response.json()["id"])
    check_trained_stored_and_registered(job, owner)
    check_api_progress_samples_and_download(job, owner)
    check_webhooks(job)
    check_the_lora_changes_what_the_model_draws(job, tiny_model_store)
    check_invisible_to_another_workspace(job, owner, outsider)


def check_trained_stored_and_registered(job, owner):
    assert job.status == "succeeded", job.error
    assert job.step == 20 and [entry[0] for entry in job.loss_history] == list(range(1, 21))
    assert [c["step"] for c in job.checkpoints] == [10, 20]
    assert all(len(c["samples"]) == 2 for c in job.checkpoints)
    # Once the LoRA is stored the checkpoints (adapter, optimiser, RNG state) go; the samples stay.
    for checkpoint in job.checkpoints:
        for name in ("lora.safetensors", "optimizer.safetensors", "state.json"):
            assert not default_storage.exists(checkpoint["prefix"] + name), checkpoint["prefix"] + name
        assert all(default_storage.exists(sample["key"]) for sample in checkpoint["samples"])
    assert default_storage.exists(job.lora_key) and default_storage.exists(job.kohya_key)
    assert job.lora_key.startswith(f"ws/{owner.workspace.pk}/artifacts/")
    data = default_storage.open(job.lora_key).read()
    assert hashlib.sha256(data).hexdigest() == job.lora_sha256

    lora = LoraAdapter.objects.get(pk=job.lora_id)
    assert lora.workspace_id == owner.workspace.pk and lora.source == "trained"
    assert (lora.family, lora.trigger_words, lora.status) == ("sd15", [job.trigger_word], "installed")
    assert lora.store_ref == f"artifact:{job.lora_key}"
    assert "watercolor" in {i.slug for i in lora.intents.all()}  # the catalog's auto-pick on the description
    assert {f.name for f in lora.files.all()} == {
        "mira-watercolor.safetensors",
        "mira-watercolor-kohya.safetensors",
    }


def check_api_progress_samples_and_download(trained, owner):
    client = owner.client()
    body = client.get(f"/api/v1/trainings/{trained.pk}").json()
    assert body["status"] == "succeeded" and body["progress"] == 1.0 and len(body["loss"]) == 20
    assert body["checkpoints"][0]["samples"][0]["url"].startswith("http://testserver/files/ws/")
    assert body["lora"]["trigger_words"] == [trained.trigger_word]
    download = client.get(body["lora"]["download_url"].removeprefix("http://testserver"))
    assert download.status_code == 200 and download["X-Content-Type-Options"] == "nosniff"
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == trained.lora_sha256
    tampered = (
        body["lora"]["download_url"].removeprefix("http://testserver").replace("signature=", "signature=0")
    )
    assert client.get(tampered).status_code == 403
    listed = client.get("/api/v1/trainings").json()["results"]
    assert [t["id"] for t in listed] == [str(trained.pk)]


def check_webhooks(trained):
    deliveries = WebhookDelivery.objects.filter(workspace_id=trained.workspace_id).order_by("created_at")
    events = [(d.url, d.payload["type"]) for d in deliveries]
    assert ("https://hooks.example.com/kizy", "training.start") in events
    assert ("https://hooks.example.com/kizy", "training.completed") in events
    assert ("https://hooks.example.com/one-off", "training.completed") in events
    completed = next(d for d in deliveries if d.payload["type"] == "training.completed")
    assert completed.payload["data"]["lora"]["id"] == str(trained.lora_id)


def check_the_lora_changes_what_the_model_draws(trained, tiny_model_store):
    """Loaded the way a worker loads it: the catalog's `artifact:` ref, resolved inside the workspace."""
    from diffusers import StableDiffusionPipeline

    lora = LoraAdapter.objects.get(pk=trained.lora_id)
    store = ModelStore(tiny_model_store)
    path = store.resolve(
        lora.store_ref, artifacts=StorageArtifactStore(), workspace_id=str(trained.workspace_id)
    )
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_store / "local" / "sd15")
    pipe.set_progress_bar_config(disable=True)

    def draw() -> np.ndarray:
        return pipe(
            f"a city in the style of {trained.trigger_word}",
            num_inference_steps=2,
            height=64,
            width=64,
            output_type="np",
            generator=torch.Generator().manual_seed(3),
        ).images[0]

    before = draw()
    pipe.load_lora_weights(path.parent, weight_name=path.name, adapter_name="trained")
    assert np.abs(draw() - before).max() > 1e-3
    other_workspace = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    with pytest.raises(Exception, match="not found in this workspace"):
        ModelStore(tiny_model_store / "other").resolve(
            lora.store_ref, artifacts=StorageArtifactStore(), workspace_id=other_workspace
        )


def check_invisible_to_another_workspace(trained, owner, outsider):
    from models_catalog.access import visible_loras

    assert visible_loras(owner.workspace).filter(pk=trained.lora_id).exists()
    assert not visible_loras(outsider.workspace).filter(pk=trained.lora_id).exists()
    mine = owner.client().get("/api/v1/loras")
    assert str(trained.lora_id) in {item["id"] for item in mine.json()["results"]}
    theirs = outsider.client()
    assert str(trained.lora_id) not in {item["id"] for item in theirs.get("/api/v1/loras").json()["results"]}
    assert theirs.get(f"/api/v1/loras/{trained.lora_id}").status_code == 404
    assert theirs.get(f"/api/v1/trainings/{trained.pk}").status_code == 404


@pytest.mark.django_db
def test_a_redelivered_duplicate_exits_while_the_lease_is_held(
    owner, sd15_model, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = start_training(owner).json()["id"]
    TrainingJob.objects.filter(pk=job_id).update(
        lease_owner="other-host:1", lease_expires_at="2999-01-01T00:00:00Z"
    )
    assert runner.training_execute(job_id=job_id).startswith("skipped")
    job = TrainingJob.objects.get(pk=job_id)
    assert job.status == "starting" and job.step == 0


@pytest.mark.django_db
def test_cancel_a_queued_training(owner, sd15_model, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = start_training(owner).json()["id"]
        body = owner.client().post(f"/api/v1/trainings/{job_id}/cancel").json()
    assert body["status"] == "canceled"
    assert runner.training_execute(job_id=job_id).startswith("skipped")


@TRANSACTIONAL
def test_cancel_a_running_training_stops_it(owner, sd15_model, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    job_id = start_training(owner, params=json.dumps({**FAST_PARAMS, "steps": 200})).json()["id"]
    original = runner.TrainingEventSink.step

    def step_then_cancel(self, **kwargs):
        original(self, **kwargs)
        if kwargs["step"] == 3:
            from studio.engine import request_cancel

            request_cancel(job_id)

    monkeypatch.setattr(runner.TrainingEventSink, "step", step_then_cancel)
    assert runner.training_execute(job_id=job_id) == "canceled"
    job = TrainingJob.objects.get(pk=job_id)
    # The flag is seen within a publish interval (0.5 s), long before the 200 steps are done.
    assert job.status == "canceled" and 3 <= job.step < 200 and job.lora_id is None


@pytest.mark.django_db
def test_a_poison_job_fails_after_its_attempts(
    owner, sd15_model, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = start_training(owner).json()["id"]
    TrainingJob.objects.filter(pk=job_id).update(attempts=runner.MAX_ATTEMPTS)
    assert runner.training_execute(job_id=job_id) == "failed"
    job = TrainingJob.objects.get(pk=job_id)
    assert job.status == "failed" and "attempts" in job.error and job.lease_owner == ""


@TRANSACTIONAL
@pytest.mark.asyncio
async def test_progress_arrives_over_the_websocket(owner, sd15_model, monkeypatch, settings):
    # Pages read these events on whatever host they were opened on: links must not point at SITE_URL.
    settings.SITE_URL = "http://site-url.invalid:9999"
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    response = await sync_to_async(start_training)(owner)
    job_id = response.json()["id"]
    ws = WebsocketCommunicator(
        application,
        f"/ws/trainings/{job_id}/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"authorization", f"Bearer {owner.key}".encode())],
    )
    connected, _ = await ws.connect()
    assert connected
    snapshot = await ws.receive_json_from(timeout=10)
    assert snapshot["type"] == "training.snapshot" and snapshot["training"]["status"] == "starting"
    assert snapshot["training"]["urls"] == {
        "get": f"/api/v1/trainings/{job_id}",
        "cancel": f"/api/v1/trainings/{job_id}/cancel",
        "stream": f"/ws/trainings/{job_id}/",
        "page": f"/training/{job_id}",
    }
    assert await sync_to_async(runner.training_execute)(job_id=job_id) == "succeeded"
    received = []
    while True:
        event = await ws.receive_json_from(timeout=10)
        received.append(event)
        if event["type"] == "training.status" and event["status"] == "succeeded":
            break
    kinds = [event["type"] for event in received]
    assert "training.progress" in kinds and "training.checkpoint" in kinds
    losses = [
        point for event in received if event["type"] == "training.progress" for point in event["losses"]
    ]
    assert [point[0] for point in losses] == list(range(1, 21))
    checkpoint = next(event for event in received if event["type"] == "training.checkpoint")
    assert checkpoint["step"] == 10 and checkpoint["samples"][0]["url"].startswith("/files/")
    lora = received[-1]["lora"]
    assert lora["trigger_words"] and lora["download_url"].startswith("/files/")
    assert lora["kohya_download_url"].startswith("/files/")
    assert "site-url.invalid" not in json.dumps(received)
    # The API keeps absolute links (on the request's host), and so do webhooks (on SITE_URL).
    api = (await sync_to_async(owner.client().get)(f"/api/v1/trainings/{job_id}")).json()
    assert api["urls"]["get"] == f"http://testserver/api/v1/trainings/{job_id}"
    assert api["lora"]["download_url"].startswith("http://testserver/files/")
    assert api["checkpoints"][0]["samples"][0]["url"].startswith("http://testserver/files/")
    from training.payloads import training_payload

    job = await sync_to_async(TrainingJob.objects.select_related("lora").get)(pk=job_id)
    hook = await sync_to_async(training_payload)(job)
    assert hook["lora"]["download_url"].startswith("http://site-url.invalid:9999/files/")
    await ws.disconnect()
    await sync_to_async(close_this_threads_connection)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_refuses_other_workspaces(owner, outsider, sd15_model, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    job_id = (await sync_to_async(start_training)(owner)).json()["id"]
    ws = WebsocketCommunicator(
        application,
        f"/ws/trainings/{job_id}/",
        headers=[
            (b"origin", b"http://127.0.0.1:8000"),
            (b"authorization", f"Bearer {outsider.key}".encode()),
        ],
    )
    connected, code = await ws.connect()
    assert not connected and code == 4404
    await sync_to_async(close_this_threads_connection)()


@pytest.mark.django_db
def test_stale_trainings_are_queued_again(owner, sd15_model, django_capture_on_commit_callbacks, monkeypatch):
    queued: list[str] = []
    monkeypatch.setattr("training.services.enqueue", lambda job: queued.append(str(job.pk)))
    with django_capture_on_commit_callbacks(execute=True):
        stale_id = start_training(owner).json()["id"]
        live_id = start_training(owner, name="Other").json()["id"]
    queued.clear()
    TrainingJob.objects.filter(pk=stale_id).update(status="processing", lease_owner="gone:1",
                                                   lease_expires_at="2000-01-01T00:00:00Z")
    TrainingJob.objects.filter(pk=live_id).update(status="processing", lease_owner="alive:1",
                                                  lease_expires_at="2999-01-01T00:00:00Z")
    assert runner.requeue_stale_trainings() == [stale_id]
    assert queued == [stale_id]
