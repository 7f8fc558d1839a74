"""The one JSON shape of a training job and of a dataset (API, websocket final events, webhooks).

The API and webhooks get absolute URLs (the request's host, or ``KIZY_SITE_URL`` without a request);
websocket events and page payloads are built without a request and read by a page on whatever host
it was opened on, so they use ``absolute_urls=False``: site-relative links, never ``KIZY_SITE_URL``'s.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kizy_site.storage import absolute, signed_url

from .models import Dataset, DatasetItem, TrainingJob


def _link(request: HttpRequest | None, url: str, absolute_urls: bool) -> str:
    return absolute(request, url) if absolute_urls else url


def _url(request: HttpRequest | None, key: str, absolute_urls: bool = True) -> str:
    return _link(request, signed_url(key), absolute_urls) if key else ""


def sample_payload(
    sample: dict[str, Any], request: HttpRequest | None = None, *, absolute_urls: bool = True
) -> dict[str, Any]:
    return {
        "url": _url(request, sample["key"], absolute_urls),
        **{k: sample[k] for k in ("prompt", "seed", "width", "height") if k in sample},
    }


def checkpoints_payload(
    job: TrainingJob, request: HttpRequest | None = None, *, absolute_urls: bool = True
) -> list[dict[str, Any]]:
    return [
        {
            "step": c["step"],
            "seconds": c.get("seconds"),
            "samples": [sample_payload(s, request, absolute_urls=absolute_urls) for s in c.get("samples", [])],
        }
        for c in job.checkpoints or []
    ]


def lora_payload(
    job: TrainingJob, request: HttpRequest | None = None, *, absolute_urls: bool = True
) -> dict[str, Any] | None:
    if job.lora_id is None or job.lora is None:
        return None
    lora = job.lora
    return {
        "id": str(lora.pk),
        "name": lora.name,
        "family": lora.family,
        "trigger_words": lora.trigger_words,
        "sha256": lora.sha256,
        "size_bytes": lora.size_bytes,
        "intents": [i.slug for i in lora.intents.all()],
        "download_url": _url(request, job.lora_key, absolute_urls),
        "kohya_download_url": _url(request, job.kohya_key, absolute_urls),
    }


def training_urls(
    job: TrainingJob, request: HttpRequest | None = None, *, absolute_urls: bool = True
) -> dict[str, str]:
    stream = f"/ws/trainings/{job.pk}/"
    return {
        "get": _link(request, f"/api/v1/trainings/{job.pk}", absolute_urls),
        "cancel": _link(request, f"/api/v1/trainings/{job.pk}/cancel", absolute_urls),
        "stream": absolute(request, stream).replace("http", "ws", 1) if absolute_urls else stream,
        "page": _link(request, f"/training/{job.pk}", absolute_urls),
    }


def training_payload(
    job: TrainingJob, request: HttpRequest | None = None, *, absolute_urls: bool = True
) -> dict[str, Any]:
    return {
        "id": str(job.pk),
        "name": job.name,
        "description": job.description,
        "goal_type": job.goal_type,
        "trigger_word": job.trigger_word,
        "status": job.status,
        "progress": round(job.progress, 4),
        "step": job.step,
        "total_steps": job.total_steps,
        "model": {
            "id": str(job.base_model_id) if job.base_model_id else None,
            "ref": job.base_model_ref,
            "family": job.family,
        },
        "dataset": str(job.dataset_id) if job.dataset_id else None,
        "images": len(job.items or []),
        "params": job.params,
        "loss": [[entry[0], entry[1]] for entry in job.loss_history or []],
        "checkpoints": checkpoints_payload(job, request, absolute_urls=absolute_urls),
        "latest_checkpoint_step": job.latest_checkpoint_step,
        "runs": job.runs,
        "lora": lora_payload(job, request, absolute_urls=absolute_urls) if job.status == "succeeded" else None,
        "error": job.error or None,
        "logs": job.logs,
        "webhook": job.webhook or None,
        "webhook_events_filter": job.webhook_events_filter,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "urls": training_urls(job, request, absolute_urls=absolute_urls),
    }


def item_payload(
    item: DatasetItem, request: HttpRequest | None = None, *, absolute_urls: bool = True
) -> dict[str, Any]:
    return {
        "id": str(item.pk),
        "kind": item.kind,
        "source_name": item.source_name,
        "width": item.width,
        "height": item.height,
        "caption": item.caption,
        "caption_auto": item.caption_auto,
        "url": _url(request, item.key, absolute_urls),
    }


def dataset_payload(
    dataset: Dataset,
    request: HttpRequest | None = None,
    *,
    checks: dict[str, Any] | None = None,
    notices: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(dataset.pk),
        "name": dataset.name,
        "description": dataset.description,
        "goal_type": dataset.goal_type,
        "trigger_word": dataset.trigger_word,
        "items": [item_payload(item, request) for item in dataset.items.all()],
        "created_at": dataset.created_at.isoformat() if dataset.created_at else None,
        "urls": {
            "get": absolute(request, f"/api/v1/datasets/{dataset.pk}"),
            "page": absolute(request, f"/training/datasets/{dataset.pk}"),
        },
    }
    if checks is not None:
        body["checks"] = checks
    if notices:
        body["notices"] = notices
    return body
