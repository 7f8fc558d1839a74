"""Live job events over websockets: one job (`/ws/generations/<id>/`) or the whole workspace
(`/ws/workspace/`). Authenticated by session or API key (accounts.ws_auth), origin-checked in
asgi.py, and refused for jobs of other workspaces (T4)."""
from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.workspace_auth import WorkspaceAuth

from .engine import job_group, workspace_group
from .events import job_state
from .serializers_output import generation_output_event

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class _JobEventsConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    groups_joined: list[str]

    def auth(self) -> WorkspaceAuth | None:
        auth = self.scope.get("kizy_auth")
        return auth if isinstance(auth, WorkspaceAuth) and "read" in auth.scopes else None

    async def join(self, groups: list[str]) -> None:
        self.groups_joined = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def job_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})


class GenerationEventsConsumer(_JobEventsConsumer):
    async def connect(self) -> None:
        auth = self.auth()
        if auth is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        snapshot = await self._snapshot(auth, self.scope["url_route"]["kwargs"]["generation_id"])
        if snapshot is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.join([job_group("generation", snapshot["id"])])
        await self.accept()
        await self.send_json(snapshot)

    @database_sync_to_async
    def _snapshot(self, auth: WorkspaceAuth, generation_id: str) -> dict[str, Any] | None:
        from .access import get_generation_for_workspace

        try:
            generation = get_generation_for_workspace(workspace=auth.workspace, id=generation_id)
        except Exception:  # noqa: BLE001 - Http404 and malformed ids alike
            return None
        state: dict[str, Any] = job_state(generation)
        if generation.is_terminal:
            state.update(generation_output_event(generation))
        return state


class WorkspaceEventsConsumer(_JobEventsConsumer):
    async def connect(self) -> None:
        auth = self.auth()
        if auth is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.join([workspace_group(str(auth.workspace.pk))])
        await self.accept()
        await self.send_json({"type": "hello", "workspace": str(auth.workspace.pk)})
