"""Sync the public catalog from CivitAI or Hugging Face and keep a report of what happened.

Withdrawals: a version that disappears from its model's version list is withdrawn at once. A model
missing from the listing is looked up by id (a 404, or a disabled repository, withdraws it). After a
*full* listing every such model is checked (up to MAX_RECHECKS); a partial listing (a query or a limit)
says nothing about what lies beyond it, so it checks only `recheck` of them, rotating through the
catalogue from run to run (the nightly beat sync passes a small number). Rows are never deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.utils import timezone

from ..clients.civitai import CivitaiClient
from ..clients.civitai import default_client as default_civitai_client
from ..clients.http import UpstreamError, UpstreamNotFound
from ..clients.huggingface import HuggingFaceClient, model_info_dict
from ..families import rating_allowed
from ..models import BaseModel, CatalogEntry, LoraAdapter, Source, Status, SyncReport
from ..normalize import civitai as civitai_normalize
from ..normalize import huggingface as hf_normalize
from ..normalize.types import UpstreamItem
from .upsert import entries_mark_withdrawn, entry_upsert

logger = logging.getLogger(__name__)
MAX_RECHECKS = 500
MAX_ERRORS_KEPT = 200


class _Run:
    """Counters and errors of one sync, written to its SyncReport at the end."""

    def __init__(self, report: SyncReport) -> None:
        self.report = report
        self.seen_keys: set[tuple[str, str]] = set()
        self.recheck = 0

    def unlisted(self, source: str, listed: set[str]) -> list[str]:
        """Known public models the listing did not show, `recheck` of them, rotating run by run."""
        unseen = sorted({row.external_id for row in _public_rows(source)} - listed)
        if not unseen or self.recheck <= 0:
            return []
        if self.recheck >= len(unseen):
            return unseen
        start = (self.report.pk * self.recheck) % len(unseen)
        return (unseen[start:] + unseen[:start])[: self.recheck]

    def error(self, what: str, exc: BaseException | str) -> None:
        logger.warning("catalog sync %s: %s: %s", self.report.source, what, exc)
        if len(self.report.errors) < MAX_ERRORS_KEPT:
            self.report.errors.append({"item": what, "error": str(exc)[:500]})

    def apply(self, item: UpstreamItem) -> None:
        self.report.seen += 1
        self.seen_keys.add((item.external_id, item.external_version))
        if not rating_allowed(item.nsfw_level, settings.KIZY_CATALOG_NSFW_MAX):
            self.report.filtered += 1
            return
        result = entry_upsert(item=item)
        setattr(self.report, result.outcome, getattr(self.report, result.outcome) + 1)
        if result.outcome != "unchanged" and item.family_flagged:
            self.report.flagged += 1

    def withdraw(self, entries: Iterable[CatalogEntry], reason: str) -> None:
        self.report.withdrawn += entries_mark_withdrawn(list(entries), reason=reason)


def _public_rows(source: str, **filters: Any) -> list[CatalogEntry]:
    rows: list[CatalogEntry] = []
    for model in (BaseModel, LoraAdapter):
        rows += list(
            model.objects.filter(source=source, workspace__isnull=True, **filters).exclude(
                status=Status.WITHDRAWN
            )
        )
    return rows


def catalog_sync(
    *,
    source: str,
    query: str = "",
    limit: int | None = None,
    trigger: str = "command",
    user: Any = None,
    recheck: int | None = None,
    civitai: CivitaiClient | None = None,
    huggingface: HuggingFaceClient | None = None,
) -> SyncReport:
    """Sync `source`; `recheck` bounds the by-id lookups of unlisted models (default: all after a full
    listing, none after a partial one)."""
    if source not in (Source.CIVITAI, Source.HUGGINGFACE):
        raise ValueError(f"cannot sync from {source!r}; choose civitai or huggingface")
    report = SyncReport.objects.create(
        source=source, query=query or "", limit=limit, trigger=trigger, triggered_by=user
    )
    run = _Run(report)
    run.recheck = (
        (MAX_RECHECKS if not (query or limit) else 0) if recheck is None else min(recheck, MAX_RECHECKS)
    )
    try:
        if source == Source.CIVITAI:
            _sync_civitai(run, civitai or default_civitai_client(), query=query, limit=limit)
        else:
            _sync_huggingface(run, huggingface or HuggingFaceClient(), query=query, limit=limit)
        report.outcome = SyncReport.Outcome.PARTIAL if report.errors else SyncReport.Outcome.SUCCEEDED
    except UpstreamError as exc:
        run.error("listing", exc)
        report.outcome = SyncReport.Outcome.FAILED
    except Exception as exc:
        logger.exception("catalog sync from %s crashed", source)
        run.error("sync", f"{type(exc).__name__}: {exc}")
        report.outcome = SyncReport.Outcome.FAILED
        raise
    finally:
        report.finished_at = timezone.now()
        report.save()
    return report


# --- CivitAI ------------------------------------------------------------------------------------


def _civitai_model(run: _Run, client: CivitaiClient, model: dict[str, Any]) -> None:
    model_id = str(model.get("id"))
    try:
        items = civitai_normalize.model_items(
            model, api_base=client.base_url, nsfw_max=settings.KIZY_CATALOG_NSFW_MAX
        )
        for item in items:
            run.apply(item)
    except Exception as exc:  # one bad item must not stop the sync
        run.error(f"civitai model {model_id}", f"{type(exc).__name__}: {exc}")
        return
    versions = {item.external_version for item in items}
    gone = [
        row
        for row in _public_rows(Source.CIVITAI, external_id=model_id)
        if row.external_version not in versions
    ]
    run.withdraw(gone, "This version is no longer published on CivitAI.")


def _sync_civitai(run: _Run, client: CivitaiClient, *, query: str, limit: int | None) -> None:
    listed_models: set[str] = set()
    for model in client.iter_models(query=query or None, limit=limit):
        listed_models.add(str(model.get("id")))
        _civitai_model(run, client, model)
    for model_id in run.unlisted(Source.CIVITAI, listed_models):
        try:
            model = client.get_model(model_id)
        except UpstreamNotFound:
            run.withdraw(_public_rows(Source.CIVITAI, external_id=model_id), "Removed from CivitAI.")
            continue
        except UpstreamError as exc:
            run.error(f"civitai model {model_id}", exc)
            continue
        _civitai_model(run, client, model)


# --- Hugging Face -------------------------------------------------------------------------------


def _hf_repo(run: _Run, client: HuggingFaceClient, repo_id: str) -> None:
    try:
        info = model_info_dict(client.model_info(repo_id))
    except UpstreamNotFound:
        run.withdraw(_public_rows(Source.HUGGINGFACE, external_id=repo_id), "Removed from Hugging Face.")
        return
    except UpstreamError as exc:
        run.error(f"huggingface {repo_id}", exc)
        return
    if info["disabled"]:
        run.withdraw(_public_rows(Source.HUGGINGFACE, external_id=repo_id), "Disabled on Hugging Face.")
        return
    try:
        item = hf_normalize.repo_item(info, endpoint=client.endpoint)
        if item is not None:
            run.apply(item)
    except Exception as exc:
        run.error(f"huggingface {repo_id}", f"{type(exc).__name__}: {exc}")


def _sync_huggingface(run: _Run, client: HuggingFaceClient, *, query: str, limit: int | None) -> None:
    listed: list[str] = []
    for listing in (client.iter_base_models, client.iter_loras):
        for info in listing(query=query or None, limit=limit):
            if info.id not in listed:
                listed.append(info.id)
    for repo_id in listed:
        _hf_repo(run, client, repo_id)
    for repo_id in run.unlisted(Source.HUGGINGFACE, set(listed)):
        _hf_repo(run, client, repo_id)
