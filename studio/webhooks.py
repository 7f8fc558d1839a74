"""Outgoing webhooks, signed per the Standard Webhooks spec, delivered with retries, SSRF-safe.

- W1: `webhook-id`, `webhook-timestamp`, `webhook-signature` (HMAC-SHA256, per-workspace secret).
- W2: retries keep the id with a fresh timestamp and signature; 3xx is not followed; 410 disables.
- W3/W4: the host is resolved once, every address must be public, and the connection goes to that
  address (with the original Host and TLS server name), so DNS rebinding cannot redirect it.
- W5: deliveries are queued with `transaction.on_commit`, so a rolled-back job sends nothing.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from standardwebhooks import Webhook

from accounts.models import Workspace

from .models import DeliveryStatus, Generation, Source, Status, WebhookDelivery, WebhookEndpoint, WebhookSecret

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
TIMEOUT = urllib3.Timeout(connect=5, read=15)
RESPONSE_BODY_LIMIT = 64 * 1024  # bytes of the receiver's answer read at most (only a snippet is kept)
_BLOCKED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "100::/64", "64:ff9b:1::/48",
    "2001::/32",  # Teredo: the far end is whatever the tunnel says (and the client part is obfuscated)
    "2001:db8::/32",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeDestination(ValueError):
    """The URL points at an address the site must never call (private, loopback, metadata...)."""


def allow_private_destinations() -> bool:
    """Local receivers are allowed in development only; the production profile always refuses them
    (and `check --deploy` reports KIZY_WEBHOOK_ALLOW_PRIVATE as an error, see studio/checks.py)."""
    return bool(getattr(settings, "KIZY_WEBHOOK_ALLOW_PRIVATE", False)) and not settings.PRODUCTION


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d), 6to4 (2002:AABB:CCDD::)
    or well-known NAT64 (64:ff9b::a.b.c.d). Connecting to the IPv6 address reaches that IPv4 host."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        address = embedded
    if any(address in network for network in _BLOCKED_NETWORKS if network.version == address.version):
        return False
    return address.is_global


def _described(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return f"{address}, which is {embedded}" if embedded is not None else str(address)


def resolve_public_address(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, one vetted IP address) for `url`, or UnsafeDestination saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination("Webhook URLs must be absolute http(s) URLs.")
    if settings.PRODUCTION and parts.scheme != "https":
        raise UnsafeDestination("Webhook URLs must use https.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeDestination(f"The webhook host {parts.hostname!r} does not resolve.") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not allow_private_destinations():
        bad = [_described(a) for a in addresses if not _is_public(a)]
        if bad:
            raise UnsafeDestination(
                f"The webhook host {parts.hostname!r} resolves to a private or reserved address ({bad[0]}); "
                "use a public URL."
            )
    return parts.scheme, parts.hostname, port, str(addresses[0])


def check_destination_url(url: str) -> None:
    try:
        resolve_public_address(url)
    except UnsafeDestination as exc:
        raise ValidationError({"webhook": str(exc)}) from exc


# --- signing ------------------------------------------------------------------------------------

def workspace_secret(workspace: Workspace) -> str:
    row, _ = WebhookSecret.objects.get_or_create(
        workspace=workspace, defaults={"secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()}
    )
    return row.secret


def rotate_secret(workspace: Workspace) -> str:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    WebhookSecret.objects.update_or_create(workspace=workspace, defaults={"secret": secret})
    return secret


def signed_headers(secret: str, message_id: str, body: str, when: datetime | None = None) -> dict[str, str]:
    when = when or datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, when, body),
        "content-type": "application/json",
        "user-agent": "Kizy-Webhooks/1.0",
    }


# --- queueing -----------------------------------------------------------------------------------

def _wants(filter_: list[str], event: str) -> bool:
    return not filter_ or event in filter_


def generation_webhook_payload(generation: Generation, event: str) -> dict[str, Any]:
    """The body for one event. Predictions made through the Replicate surface get Replicate's own
    webhook body, the prediction object (the same serializer as its API); others get Kizy's envelope
    `{"type": "generation.<event>", "timestamp", "data": <generation>}`."""
    if generation.source == Source.REPLICATE:
        from .compat.replicate_api import prediction_payload

        return prediction_payload(generation, None)
    from .serializers_output import generation_payload

    return {"type": f"generation.{event}", "timestamp": timezone.now().isoformat(),
            "data": generation_payload(generation)}


def _with_fresh_links(delivery: WebhookDelivery) -> dict[str, Any]:
    """The stored payload with its output links signed again, now: a retry hours later must not carry
    links that expired while it waited (signed URLs live KIZY_SIGNED_URL_TTL)."""
    payload = delivery.payload
    generation = delivery.generation
    if generation is None or generation.status != Status.SUCCEEDED or not generation.outputs:
        return payload
    from .serializers_output import output_files

    files = output_files(generation)
    if generation.source == Source.REPLICATE:
        return {**payload, "output": [f["url"] for f in files]} if payload.get("output") else payload
    data = payload.get("data")
    if isinstance(data, dict) and data.get("outputs"):
        return {**payload, "data": {**data, "outputs": files}}
    return payload


def queue_generation_webhooks(generation: Generation, event: str) -> list[WebhookDelivery]:
    """Record one delivery per interested URL and send them after commit."""
    targets: list[tuple[str, WebhookEndpoint | None]] = []
    if generation.webhook and event in (generation.webhook_events_filter or []):
        targets.append((generation.webhook, None))
    for endpoint in WebhookEndpoint.objects.filter(workspace_id=generation.workspace_id, enabled=True):
        if _wants(endpoint.events, event):
            targets.append((endpoint.url, endpoint))
    if not targets:
        return []
    payload = generation_webhook_payload(generation, event)
    deliveries = [
        WebhookDelivery.objects.create(
            id=f"msg_{secrets.token_urlsafe(18)}", workspace_id=generation.workspace_id, generation=generation,
            endpoint=endpoint, url=url, event=event, payload=payload,
        )
        for url, endpoint in targets
    ]
    from .tasks import deliver_webhook

    for delivery in deliveries:
        delivery_id = delivery.pk
        transaction.on_commit(lambda delivery_id=delivery_id: deliver_webhook.delay(delivery_id))
    return deliveries


# --- delivery -----------------------------------------------------------------------------------

def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    scheme, host, port, address = resolve_public_address(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {**headers, "host": parts.netloc}
    if scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address, port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(), timeout=TIMEOUT, retries=False,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=TIMEOUT, retries=False)
    try:
        response = pool.urlopen("POST", path, body=body, headers=headers, redirect=False, preload_content=False)
        try:
            # A receiver may answer with an endless body: read a bounded prefix, never the whole thing.
            answer = response.read(RESPONSE_BODY_LIMIT, decode_content=False) or b""
        finally:
            response.close()
        return int(response.status), answer[:200].decode("utf-8", "replace")
    finally:
        pool.close()


def backoff_seconds(attempt: int) -> int:
    """5 s, 25 s, 2 min, 10 min, 1 h … (exponential, capped at 6 h)."""
    return int(min(5 * (5 ** (attempt - 1)), 6 * 3600))


def deliver(delivery_id: str) -> tuple[str, int | None]:
    """One attempt. Returns (outcome, seconds until the next attempt or None)."""
    delivery = WebhookDelivery.objects.select_related("workspace", "endpoint", "generation").get(pk=delivery_id)
    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status, None
    delivery.payload = _with_fresh_links(delivery)
    body = json.dumps(delivery.payload, separators=(",", ":"))
    headers = signed_headers(workspace_secret(delivery.workspace), delivery.pk, body)
    delivery.attempts += 1
    code: int | None = None
    try:
        code, answer = _post(delivery.url, body.encode(), headers)
        error = ("" if 200 <= code < 300 else f"HTTP {code}" + (f": {answer.strip()}" if answer.strip() else ""))[:300]
    except UnsafeDestination as exc:
        error = str(exc)
        delivery.attempts = MAX_ATTEMPTS  # never retried: the destination itself is refused
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    delivery.last_status_code, delivery.last_error = code, error
    if not error:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, timezone.now()
    elif code == 410:
        delivery.status = DeliveryStatus.FAILED
        if delivery.endpoint is not None:
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
                enabled=False, disabled_reason="The receiver answered 410 Gone.")
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
    delivery.save()
    if delivery.status == DeliveryStatus.PENDING:
        return "retry", backoff_seconds(delivery.attempts)
    return delivery.status, None


def queue_job_webhooks(*, workspace_id: Any, kind: str, event: str, data: dict[str, Any], webhook: str = "",
                       webhook_events_filter: list[str] | None = None) -> list[WebhookDelivery]:
    """`queue_generation_webhooks` for jobs that are not generations (training runs): the same
    endpoints, signing, retries and after-commit delivery; the payload type is `<kind>.<event>`."""
    targets: list[tuple[str, WebhookEndpoint | None]] = []
    if webhook and event in (webhook_events_filter or []):
        targets.append((webhook, None))
    for endpoint in WebhookEndpoint.objects.filter(workspace_id=workspace_id, enabled=True):
        if _wants(endpoint.events, event):
            targets.append((endpoint.url, endpoint))
    payload = {"type": f"{kind}.{event}", "timestamp": timezone.now().isoformat(), "data": data}
    deliveries = [
        WebhookDelivery.objects.create(id=f"msg_{secrets.token_urlsafe(18)}", workspace_id=workspace_id,
                                       endpoint=endpoint, url=url, event=event, payload=payload)
        for url, endpoint in targets
    ]
    from .tasks import deliver_webhook

    for delivery in deliveries:
        delivery_id = delivery.pk
        transaction.on_commit(lambda delivery_id=delivery_id: deliver_webhook.delay(delivery_id))
    return deliveries


# --- workspace endpoints (settings) ----------------------------------------------------------------

def endpoint_create(
    *, workspace: Workspace, url: str, events: list[str] | None, description: str = "",
) -> WebhookEndpoint:
    from .services import WEBHOOK_EVENTS

    check_destination_url(url)
    chosen = sorted(set(events or []))
    unknown = [event for event in chosen if event not in WEBHOOK_EVENTS]
    if unknown:
        raise ValidationError({"events": f"Unknown event(s) {', '.join(unknown)}; choose from "
                                         f"{', '.join(WEBHOOK_EVENTS)} (none means all)."})
    workspace_secret(workspace)  # make sure there is a secret to sign with
    return WebhookEndpoint.objects.create(workspace=workspace, url=url, events=chosen, description=description[:200])


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


def get_endpoint_for_workspace(*, workspace: Workspace, id: object) -> WebhookEndpoint:
    from django.http import Http404

    try:
        return WebhookEndpoint.objects.get(workspace=workspace, id=id)
    except (WebhookEndpoint.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such webhook endpoint in this workspace.") from exc
