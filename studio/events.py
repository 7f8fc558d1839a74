"""Job events: to the websocket groups of the job and its workspace, and to webhooks, always after
the transaction that caused them has committed (CONVENTIONS 6, W5)."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from .engine import broadcast, job_group, workspace_group
from .models import Generation


def job_state(generation: Generation) -> dict[str, Any]:
    """The compact state a client needs to redraw a job card."""
    return {
        "type": "status",
        "id": str(generation.pk),
        "status": generation.status,
        "progress": round(generation.progress, 4),
        "node": generation.current_node,
        "title": generation.current_title,
        "error": generation.error or None,
    }


def groups_for(generation: Generation) -> list[str]:
    return [job_group("generation", str(generation.pk)), workspace_group(str(generation.workspace_id))]


def emit(generation: Generation, event: dict[str, Any]) -> None:
    event = {"id": str(generation.pk), **event}
    broadcast(groups_for(generation), event)


def emit_on_commit(generation: Generation, event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: emit(generation, event))


def job_finished_on_commit(generation: Generation) -> None:
    """Final status event plus the `output` webhook (when outputs were saved) and the `completed`
    webhook, once the final row is committed."""

    def send() -> None:
        from .serializers_output import generation_output_event
        from .webhooks import queue_generation_webhooks

        emit(generation, {**job_state(generation), **generation_output_event(generation)})
        if generation.status == "succeeded" and generation.outputs:
            queue_generation_webhooks(generation, "output")
        queue_generation_webhooks(generation, "completed")

    transaction.on_commit(send)
