"""Which webhook events a real job sends (start, output, logs, completed), per request filter and per
workspace endpoint, to a real local receiver; and links that are signed again at each attempt."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks import Webhook

from studio import webhooks
from studio.engine import node_registry
from studio.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from tests.studio.test_webhooks import receiver_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

FAST = {"prompt": "a paper boat", "steps": 2, "width": 64, "height": 64, "seed": 1}


@pytest.fixture
def chatty_text_to_image(monkeypatch):
    """The real text_to_image node, which also writes three log lines before it draws."""
    node_cls = node_registry().get("text_to_image")
    original = node_cls.run

    def run(self, ctx, inputs):
        for line in ("loading weights", "weights ready", "drawing"):
            ctx.log(line)
        return original(self, ctx, inputs)

    monkeypatch.setattr(node_cls, "run", run)


def local(url: str) -> str:
    """The path and query of an absolute link (built on KIZY_SITE_URL), for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def submit(owner, capture, **body):
    with capture(execute=True):
        response = owner.client().post("/api/v1/generations", {**FAST, **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def received(receiver, secret):
    """(type, data) of each request, in arrival order, after checking its signature."""
    return [(payload["type"], payload["data"])
            for payload in (Webhook(secret).verify(body, headers) for headers, body in receiver.requests)]


def test_every_event_of_a_real_job_in_order(owner, demo_catalog, receiver_factory,  # noqa: F811
                                            chatty_text_to_image, django_capture_on_commit_callbacks):
    receiver = receiver_factory([])
    job_id = submit(owner, django_capture_on_commit_callbacks, webhook=receiver.url)
    events = received(receiver, webhooks.workspace_secret(owner.workspace))
    types = [kind for kind, _ in events]
    assert types[0] == "generation.start" and types[-2:] == ["generation.output", "generation.completed"]
    assert set(types[1:-2]) == {"generation.logs"}
    # Three lines within a second: one `logs` at once, the held-back lines in one more at the end.
    assert len(types[1:-2]) == 2
    assert events[-3][1]["logs"].splitlines() == [
        "[generate] loading weights", "[generate] weights ready", "[generate] drawing"]
    output = events[-2][1]
    assert output["id"] == job_id and output["status"] == "succeeded" and len(output["outputs"]) == 1
    assert output["outputs"][0]["url"].startswith("http")


@pytest.mark.parametrize("chosen", [["output"], ["logs"], ["completed"], ["start"], ["start", "completed"]])
def test_the_request_filter_decides_what_arrives(chosen, owner, demo_catalog, receiver_factory,  # noqa: F811
                                                 chatty_text_to_image, django_capture_on_commit_callbacks):
    receiver = receiver_factory([])
    submit(owner, django_capture_on_commit_callbacks, webhook=receiver.url, webhook_events_filter=chosen)
    types = {kind for kind, _ in received(receiver, webhooks.workspace_secret(owner.workspace))}
    assert types == {f"generation.{event}" for event in chosen}
    if chosen == ["completed"] or chosen == ["output"]:
        assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).count() == 0


def test_workspace_endpoints_get_only_their_events(owner, demo_catalog, receiver_factory,  # noqa: F811
                                                   chatty_text_to_image, django_capture_on_commit_callbacks):
    outputs, logs, everything = receiver_factory([]), receiver_factory([]), receiver_factory([])
    WebhookEndpoint.objects.create(workspace=owner.workspace, url=outputs.url, events=["output"])
    WebhookEndpoint.objects.create(workspace=owner.workspace, url=logs.url, events=["logs"])
    WebhookEndpoint.objects.create(workspace=owner.workspace, url=everything.url, events=[])
    submit(owner, django_capture_on_commit_callbacks)  # no per-request webhook at all
    secret = webhooks.workspace_secret(owner.workspace)
    assert [kind for kind, _ in received(outputs, secret)] == ["generation.output"]
    assert {kind for kind, _ in received(logs, secret)} == {"generation.logs"}
    assert {kind for kind, _ in received(everything, secret)} == {
        "generation.start", "generation.logs", "generation.output", "generation.completed"}


def test_a_failed_job_sends_no_output(owner, demo_catalog, receiver_factory, monkeypatch,  # noqa: F811
                                      django_capture_on_commit_callbacks):
    def broken(self, ctx, inputs):
        ctx.log("about to fail")
        raise RuntimeError("the pipeline broke")

    monkeypatch.setattr(node_registry().get("text_to_image"), "run", broken)
    receiver = receiver_factory([])
    submit(owner, django_capture_on_commit_callbacks, webhook=receiver.url)
    types = [kind for kind, _ in received(receiver, webhooks.workspace_secret(owner.workspace))]
    assert types == ["generation.start", "generation.logs", "generation.completed"]


def test_a_retry_carries_links_signed_at_that_attempt(owner, demo_catalog, receiver_factory, settings,  # noqa: F811
                                                      django_capture_on_commit_callbacks, client):
    import time

    from studio.models import Generation

    job_id = submit(owner, django_capture_on_commit_callbacks)
    generation = Generation.objects.get(pk=job_id)
    settings.KIZY_SIGNED_URL_TTL = 2
    receiver = receiver_factory([500, 200])
    generation.webhook, generation.webhook_events_filter = receiver.url, ["completed"]
    [delivery] = webhooks.queue_generation_webhooks(generation, "completed")  # sent by hand below
    assert webhooks.deliver(delivery.pk) == ("retry", 5)
    first = json.loads(receiver.requests[0][1])["data"]["outputs"][0]["url"]
    time.sleep(3)  # the first attempt's link has expired by now
    assert client.get(local(first)).status_code == 403
    assert webhooks.deliver(delivery.pk)[0] == DeliveryStatus.DELIVERED
    second = json.loads(receiver.requests[1][1])["data"]["outputs"][0]["url"]
    expires = lambda url: int(parse_qs(urlsplit(url).query)["expires"][0])  # noqa: E731
    assert expires(second) > expires(first)
    assert client.get(local(second)).status_code == 200


def test_replicate_bodies_are_signed_again_too(team, receiver_factory, settings):  # noqa: F811
    import time

    from studio.models import Generation

    receiver = receiver_factory([500, 200])
    key = f"ws/{team.pk}/artifacts/{'a' * 64}.png"
    generation = Generation.objects.create(
        workspace=team, graph={"nodes": {}, "outputs": []}, status="succeeded", source="replicate",
        request={"prompt": "x", "model": "m"}, webhook=receiver.url, webhook_events_filter=["completed"],
        outputs=[{"key": key, "kind": "image", "content_type": "image/png", "sha256": "a" * 64}])
    [delivery] = webhooks.queue_generation_webhooks(generation, "completed")
    assert webhooks.deliver(delivery.pk)[0] == "retry"
    time.sleep(1.2)
    assert webhooks.deliver(delivery.pk)[0] == DeliveryStatus.DELIVERED
    first, second = (json.loads(body) for _, body in receiver.requests)
    assert "type" not in first and first["id"] == str(generation.pk) and first["status"] == "succeeded"
    expires = lambda body: int(parse_qs(urlsplit(body["output"][0]).query)["expires"][0])  # noqa: E731
    assert expires(second) > expires(first)
    assert WebhookDelivery.objects.get(pk=delivery.pk).payload["output"] == second["output"]
