"""Thin Celery tasks: ids in, a service call, nothing else (CONVENTIONS 5)."""
from __future__ import annotations

from celery import shared_task

from .runner import generation_execute, requeue_stale_jobs


@shared_task(name="studio.run_generation", queue="gpu", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def run_generation(generation_id: str) -> str:
    return generation_execute(generation_id=generation_id)


@shared_task(name="studio.requeue_stale_jobs", queue="default", ignore_result=True)
def requeue_stale() -> list[str]:
    return requeue_stale_jobs()


@shared_task(name="studio.deliver_webhook", queue="default", bind=True, ignore_result=True, max_retries=None)
def deliver_webhook(self, delivery_id: str) -> str:  # type: ignore[no-untyped-def]
    from .webhooks import deliver

    outcome, retry_in = deliver(delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
    return outcome
