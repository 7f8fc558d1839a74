"""`/ws/trainings/<id>/`: one training's live events (progress with losses, checkpoints with samples,
logs, the final state). Same authentication and origin checks as the studio's sockets; another
workspace's training is refused (T4). The first message is a snapshot, so a page that connects late
draws the whole curve."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.workspace_auth import WorkspaceAuth
from studio.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, _JobEventsConsumer
from studio.engine import job_group


class TrainingEventsConsumer(_JobEventsConsumer):
    async def connect(self) -> None:
        auth = self.auth()
        if auth is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        snapshot = await self._snapshot(auth, self.scope["url_route"]["kwargs"]["training_id"])
        if snapshot is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.join([job_group("training", snapshot["id"])])
        await self.accept()
        await self.send_json(snapshot)

    @database_sync_to_async
    def _snapshot(self, auth: WorkspaceAuth, training_id: str) -> dict[str, Any] | None:
        from django.http import Http404

        from .access import get_training_for_workspace
        from .payloads import training_payload

        try:
            job = get_training_for_workspace(workspace=auth.workspace, id=training_id)
        except Http404:
            return None
        return {
            "type": "training.snapshot",
            "kind": "training",
            "training": training_payload(job, absolute_urls=False),
            "id": str(job.pk),
        }
