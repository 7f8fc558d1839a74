"""Training events: to the websocket groups of the job and of its workspace, and to webhooks, always
after the transaction that caused them commits (CONVENTIONS 6). Event types are prefixed
`training.` so pages listening to the whole workspace can tell them from generation events."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from studio.engine import broadcast, job_group, workspace_group

from .models import TrainingJob


def job_state(job: TrainingJob) -> dict[str, Any]:
    return {
        "type": "training.status",
        "status": job.status,
        "progress": round(job.progress, 4),
        "step": job.step,
        "total": job.total_steps,
        "error": job.error or None,
    }


def groups_for(job: TrainingJob) -> list[str]:
    return [job_group("training", str(job.pk)), workspace_group(str(job.workspace_id))]


def emit(job: TrainingJob, event: dict[str, Any]) -> None:
    broadcast(groups_for(job), {"id": str(job.pk), "kind": "training", **event})


def emit_state_on_commit(job: TrainingJob) -> None:
    transaction.on_commit(lambda: emit(job, job_state(job)))


def queue_webhooks(job: TrainingJob, event: str) -> None:
    from studio.webhooks import queue_job_webhooks

    from .payloads import training_payload

    queue_job_webhooks(
        workspace_id=job.workspace_id,
        kind="training",
        event=event,
        data=training_payload(job),
        webhook=job.webhook,
        webhook_events_filter=job.webhook_events_filter,
    )


def job_finished_on_commit(job: TrainingJob) -> None:
    """The final state (with the LoRA, when there is one) and the `completed` webhook, after commit."""

    def send() -> None:
        from .payloads import lora_payload

        lora = lora_payload(job, absolute_urls=False) if job.status == "succeeded" else None
        emit(job, {**job_state(job), "lora": lora})
        queue_webhooks(job, "completed")

    transaction.on_commit(send)
