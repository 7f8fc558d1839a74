"""Outgoing webhooks: signatures (W1), retries (W2), SSRF refusal (W3, W4), after-commit (W5)."""
from __future__ import annotations

import ipaddress
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from rest_framework.exceptions import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from studio import webhooks
from studio.models import DeliveryStatus, Generation, WebhookDelivery, WebhookEndpoint

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_spec_test_vector_signs_and_verifies():
    when = datetime.fromtimestamp(1614265330, tz=UTC)
    headers = webhooks.signed_headers(SPEC_SECRET, SPEC_ID, SPEC_BODY, when)
    assert headers["webhook-signature"] == SPEC_SIGNATURE
    assert headers["webhook-timestamp"] == "1614265330"


def test_stale_timestamp_or_changed_body_fail_verification():
    headers = webhooks.signed_headers(SPEC_SECRET, SPEC_ID, SPEC_BODY)
    Webhook(SPEC_SECRET).verify(SPEC_BODY, headers)  # fresh and intact: verifies
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify('{"test": 1}', headers)
    old = webhooks.signed_headers(SPEC_SECRET, SPEC_ID, SPEC_BODY, datetime.fromtimestamp(1614265330, tz=UTC))
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(SPEC_BODY, old)


class Receiver:
    """A real HTTP receiver on loopback that answers with a scripted list of status codes."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.requests: list[tuple[dict[str, str], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver_factory(settings):
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = True  # the receiver lives on loopback (development only)
    made: list[Receiver] = []

    def make(codes: list[int]) -> Receiver:
        made.append(Receiver(codes))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def _generation(workspace, **fields) -> Generation:
    return Generation.objects.create(workspace=workspace, graph={"nodes": {}, "outputs": []}, status="succeeded",
                                     **fields)


@pytest.mark.django_db
def test_signed_delivery_reaches_a_local_receiver(team, receiver_factory, django_capture_on_commit_callbacks):
    receiver = receiver_factory([200])
    generation = _generation(team, webhook=receiver.url, webhook_events_filter=["completed"])
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = webhooks.queue_generation_webhooks(generation, "completed")
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DELIVERED
    [(headers, body)] = receiver.requests
    payload = Webhook(webhooks.workspace_secret(team)).verify(body, headers)
    assert payload["type"] == "generation.completed" and payload["data"]["id"] == str(generation.pk)


@pytest.mark.django_db
def test_retries_keep_the_id_with_a_new_signature_and_3xx_is_not_followed(team, receiver_factory, monkeypatch):
    receiver = receiver_factory([500, 302, 200])
    generation = _generation(team, webhook=receiver.url, webhook_events_filter=["completed"])
    [delivery] = webhooks.queue_generation_webhooks(generation, "completed")
    stamps = iter([1_700_000_000, 1_700_000_005, 1_700_000_030])
    real_headers = webhooks.signed_headers
    monkeypatch.setattr(webhooks, "signed_headers", lambda s, i, b: real_headers(
        s, i, b, datetime.fromtimestamp(next(stamps), tz=UTC)))
    assert webhooks.deliver(delivery.pk) == ("retry", 5)
    assert webhooks.deliver(delivery.pk) == ("retry", 25)  # the 302 counts as a failure, not followed
    assert webhooks.deliver(delivery.pk)[0] == DeliveryStatus.DELIVERED
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    signatures = {headers["webhook-signature"] for headers, _ in receiver.requests}
    assert ids == {delivery.pk} and len(signatures) == 3 and len(receiver.requests) == 3


@pytest.mark.django_db
def test_410_disables_the_workspace_endpoint(team, receiver_factory):
    receiver = receiver_factory([410])
    endpoint = WebhookEndpoint.objects.create(workspace=team, url=receiver.url)
    [delivery] = webhooks.queue_generation_webhooks(_generation(team), "completed")
    assert webhooks.deliver(delivery.pk) == (DeliveryStatus.FAILED, None)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.169.254", "224.0.0.1",
    "fc00::1", "fe80::1", "::1", "::ffff:127.0.0.1",
    # IPv6 forms that stand for an IPv4 host: IPv4-compatible, 6to4, NAT64, and Teredo tunnels
    "::127.0.0.1", "::10.0.0.1", "::8.8.8.8", "2002:a00:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1",
    "64:ff9b::10.0.0.1", "64:ff9b::169.254.169.254", "64:ff9b:1::8.8.8.8",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1",
    # documentation and benchmarking ranges, site-local
    "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "2001:db8::1", "fec0::1",
])
def test_private_and_reserved_destinations_are_refused(address, monkeypatch, settings):
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = False
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, 443))])
    with pytest.raises(webhooks.UnsafeDestination):
        webhooks.resolve_public_address("https://hooks.example.com/x")
    with pytest.raises(ValidationError):
        webhooks.check_destination_url("https://hooks.example.com/x")


@pytest.mark.parametrize("address", [
    "93.184.215.14", "2606:4700::1111",
    "2002:5db8:d70e::1",  # 6to4 of a public IPv4 address
    "64:ff9b::93.184.215.14",  # NAT64 of a public IPv4 address
])
def test_public_destination_is_allowed(address, monkeypatch, settings):
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = False
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, 443))])
    vetted = webhooks.resolve_public_address("https://hooks.example.com/x")[3]
    assert ipaddress.ip_address(vetted) == ipaddress.ip_address(address)


def test_one_private_address_among_public_ones_is_refused(monkeypatch, settings):
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:10.0.0.8", 443, 0, 0))])
    with pytest.raises(webhooks.UnsafeDestination, match="10.0.0.8"):
        webhooks.resolve_public_address("https://hooks.example.com/x")


class EndlessReceiver:
    """Answers 200 with a body that never ends (a hostile or broken receiver)."""

    def __init__(self) -> None:
        self.sent = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["content-length"]))
                self.send_response(200)
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    while receiver.sent < 2 * 10**9:
                        self.wfile.write(chunk)
                        receiver.sent += len(chunk)
                except OSError:
                    pass  # the site hung up: what the test wants

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.django_db
def test_an_endless_answer_is_not_read_to_the_end(team, settings):
    import time

    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = True
    receiver = EndlessReceiver()
    try:
        generation = _generation(team, webhook=receiver.url, webhook_events_filter=["completed"])
        [delivery] = webhooks.queue_generation_webhooks(generation, "completed")
        started = time.monotonic()
        assert webhooks.deliver(delivery.pk) == (DeliveryStatus.DELIVERED, None)
        assert time.monotonic() - started < 10
        time.sleep(0.2)
        # What the receiver managed to push is bounded by socket buffers, far from the 2 GB it tried.
        assert receiver.sent < 64 * 1024 * 1024
    finally:
        receiver.server.shutdown()


@pytest.mark.django_db
def test_the_answer_of_a_failing_receiver_is_kept_short(team, receiver_factory):
    receiver = receiver_factory([503])
    [delivery] = webhooks.queue_generation_webhooks(
        _generation(team, webhook=receiver.url, webhook_events_filter=["completed"]), "completed")
    assert webhooks.deliver(delivery.pk)[0] == "retry"
    assert WebhookDelivery.objects.get(pk=delivery.pk).last_error.startswith("HTTP 503")


def test_production_refuses_private_receivers_even_when_allowed(settings, monkeypatch):
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE, settings.PRODUCTION = True, True
    with pytest.raises(webhooks.UnsafeDestination):
        webhooks.resolve_public_address("https://127.0.0.1/x")


def test_check_deploy_refuses_allow_private(tmp_path):
    """Not ignored silently: the production profile's `check --deploy` fails and says why."""
    from tests.site.test_deploy import manage, production_env

    process = manage(production_env(tmp_path, KIZY_WEBHOOK_ALLOW_PRIVATE="true"),
                     "check", "--deploy", "--tag", "kizy_webhooks")
    output, _ = process.communicate(timeout=180)
    assert process.returncode != 0, output
    assert "studio.E001" in output and "KIZY_WEBHOOK_ALLOW_PRIVATE" in output


def test_the_webhook_check_is_quiet_without_the_setting(settings):
    from django.core.checks import run_checks

    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = False
    assert run_checks(include_deployment_checks=True, tags=["kizy_webhooks"]) == []
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = True
    [error] = run_checks(include_deployment_checks=True, tags=["kizy_webhooks"])
    assert error.id == "studio.E001" and error.is_serious()


@pytest.mark.django_db
def test_dns_rebinding_to_loopback_never_connects(team, receiver_factory, settings, monkeypatch):
    receiver = receiver_factory([200])
    generation = _generation(team, webhook=receiver.url.replace("127.0.0.1", "rebind.example"),
                             webhook_events_filter=["completed"])
    [delivery] = webhooks.queue_generation_webhooks(generation, "completed")
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = False  # the name now resolves to loopback at delivery time
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])
    outcome, retry = webhooks.deliver(delivery.pk)
    assert outcome == DeliveryStatus.FAILED and retry is None
    assert receiver.requests == []
    assert "private or reserved" in WebhookDelivery.objects.get(pk=delivery.pk).last_error


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_sends_nothing(team, receiver_factory, settings):
    receiver = receiver_factory([200])
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with pytest.raises(RuntimeError), transaction.atomic():
        generation = _generation(team, webhook=receiver.url, webhook_events_filter=["completed"])
        webhooks.queue_generation_webhooks(generation, "completed")
        raise RuntimeError("the job's transaction fails")
    assert receiver.requests == [] and WebhookDelivery.objects.count() == 0
