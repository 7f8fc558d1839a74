"""Thin Celery tasks: ids in, a service call, nothing else (CONVENTIONS 5)."""

from __future__ import annotations

from celery import shared_task

from .runner import requeue_stale_trainings, training_execute


@shared_task(
    name="training.run_training", queue="gpu", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def run_training(job_id: str) -> str:
    return training_execute(job_id=job_id)


@shared_task(name="training.requeue_stale_trainings", queue="default", ignore_result=True)
def requeue_stale() -> list[str]:
    return requeue_stale_trainings()
