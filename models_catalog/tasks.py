"""Thin Celery tasks: ids in, a service call, nothing else."""

from __future__ import annotations

from typing import Any

import httpx
from celery import shared_task


@shared_task(name="models_catalog.sync", queue="default", acks_late=True, ignore_result=True)
def catalog_sync_task(
    source: str,
    query: str = "",
    limit: int | None = None,
    trigger: str = "beat",
    user_id: int | None = None,
    recheck: int | None = None,
) -> int:
    from django.contrib.auth import get_user_model

    from .services.sync import catalog_sync

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return catalog_sync(
        source=source, query=query, limit=limit, trigger=trigger, user=user, recheck=recheck
    ).pk


@shared_task(
    name="models_catalog.download",
    queue="default",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(httpx.TransportError,),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
)
def download_run_task(download_id: str) -> Any:
    from .services.install import download_run

    return download_run(download_id=download_id).state
