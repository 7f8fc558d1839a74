"""Thin Celery tasks for accounts."""
from __future__ import annotations

from celery import shared_task

from .storage_cleanup import delete_prefix


@shared_task(name="accounts.delete_workspace_files", queue="default", acks_late=True, ignore_result=True)
def delete_workspace_files(workspace_id: str) -> int:
    """A deleted workspace's files (outputs, uploads, checkpoints), under its `ws/<id>/` prefix."""
    return delete_prefix(f"ws/{workspace_id}/")
