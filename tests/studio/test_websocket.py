"""Websocket events through the real Redis channel layer (T4: origin and workspace checks)."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from kizy_site.asgi import application
from studio import events
from studio.models import Generation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _generation(workspace) -> Generation:
    return Generation.objects.create(workspace=workspace, graph={"nodes": {}, "outputs": []})


def _communicator(path: str, key: str | None, origin: str | None = "http://127.0.0.1:8000") -> WebsocketCommunicator:
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def test_events_arrive_in_order(owner):
    generation = await sync_to_async(_generation)(owner.workspace)
    ws = _communicator(f"/ws/generations/{generation.pk}/", owner.key)
    connected, _ = await ws.connect()
    assert connected
    snapshot = await ws.receive_json_from(timeout=5)
    assert snapshot["type"] == "status" and snapshot["status"] == "starting"
    for step in range(1, 4):
        await sync_to_async(events.emit)(generation, {"type": "step", "step": step, "total": 3})
    steps = [(await ws.receive_json_from(timeout=5))["step"] for _ in range(3)]
    assert steps == [1, 2, 3]
    await ws.disconnect()


async def test_workspace_stream_sees_its_jobs_only(owner, outsider):
    mine = await sync_to_async(_generation)(owner.workspace)
    theirs = await sync_to_async(_generation)(outsider.workspace)
    ws = _communicator("/ws/workspace/", owner.key)
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(timeout=5))["type"] == "hello"
    await sync_to_async(events.emit)(theirs, {"type": "step", "step": 9})
    await sync_to_async(events.emit)(mine, {"type": "step", "step": 1})
    event = await ws.receive_json_from(timeout=5)
    assert event["id"] == str(mine.pk)
    await ws.disconnect()


async def test_another_workspaces_job_is_refused(owner, outsider):
    generation = await sync_to_async(_generation)(owner.workspace)
    ws = _communicator(f"/ws/generations/{generation.pk}/", outsider.key)
    connected, code = await ws.connect()
    assert not connected and code == 4404


@pytest.mark.parametrize("origin", ["https://evil.example", None])
async def test_foreign_or_missing_origin_is_refused(owner, origin):
    generation = await sync_to_async(_generation)(owner.workspace)
    ws = _communicator(f"/ws/generations/{generation.pk}/", owner.key, origin=origin)
    connected, _ = await ws.connect()
    assert not connected


async def test_unauthenticated_socket_is_refused(owner):
    generation = await sync_to_async(_generation)(owner.workspace)
    ws = _communicator(f"/ws/generations/{generation.pk}/", None)
    connected, code = await ws.connect()
    assert not connected and code == 4401
