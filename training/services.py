"""Writes for datasets and training jobs.

Uploads are checked and decoded completely (``uploads.read_uploads``) before the first byte is
stored or the first row written; if storing fails half-way, the files already written are removed
and the transaction rolls back, so a refused or failed upload leaves nothing behind (U1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.workspace_auth import WorkspaceAuth
from gpu_workers.training.captions import (
    TRIGGER_PATTERN,
    Captioner,
    make_trigger_word,
    replace_trigger,
    template_caption,
)
from gpu_workers.training.presets import ParamError, resolve_params
from studio.engine import request_cancel
from studio.models import Status

from . import events
from .models import Dataset, DatasetItem, GoalType, ItemKind, TrainingJob
from .selectors import dataset_checks, idempotency_key_of, taken_trigger_words, training_for_idempotency_key
from .uploads import Intake, ProcessedImage, read_uploads

logger = logging.getLogger(__name__)

UploadedFiles = Iterable[tuple[str, IO[bytes]]]


@lru_cache(maxsize=1)
def captioner() -> Captioner:
    return Captioner(Path(settings.KIZY_MODEL_STORE) / "local" / "captioner")


def _machine_caption(image: ProcessedImage) -> str:
    model = captioner()
    if not model.available():
        return ""
    import io

    from PIL import Image

    try:
        return model.describe(Image.open(io.BytesIO(image.png)))[:300]
    except Exception:  # noqa: BLE001 - a broken captioner must not block an upload; the template caption is used
        logger.warning("captioning model failed; using the template caption", exc_info=True)
        return ""


def _auto_caption(dataset: Dataset, item: DatasetItem) -> str:
    return template_caption(
        trigger_word=dataset.trigger_word,
        description=dataset.description,
        goal_type=dataset.goal_type,
        width=item.width,
        height=item.height,
        from_video=item.kind == ItemKind.VIDEO_FRAME,
        seen=item.machine_caption,
    )


def _clean_trigger(word: str, *, workspace: Any, dataset: Dataset | None = None) -> str:
    word = (word or "").strip().lower()
    if not TRIGGER_PATTERN.match(word):
        raise ValidationError(
            {
                "trigger_word": "A trigger word is 3-40 lowercase letters, digits or '_', starting with "
                "a letter, and no spaces (e.g. 'mirkat')."
            }
        )
    clash = Dataset.objects.filter(workspace=workspace, trigger_word=word)
    if dataset is not None:
        clash = clash.exclude(pk=dataset.pk)
    if clash.exists():
        raise ValidationError(
            {
                "trigger_word": f"“{word}” is already the trigger word of another dataset in this "
                "workspace; pick another so prompts can tell the LoRAs apart."
            }
        )
    return word


def _store_images(dataset: Dataset, intake: Intake, written: list[str]) -> list[DatasetItem]:
    position = (dataset.items.aggregate(last=Max("position"))["last"] or 0) + 1
    existing = set(dataset.items.values_list("sha256", flat=True))
    items = []
    for image in intake.images:
        if image.sha256 in existing:
            intake.notices.append(f"{image.source_name} is already in the dataset; skipped")
            continue
        key = f"{dataset.storage_prefix}{image.sha256}.png"
        if not default_storage.exists(key):
            saved = default_storage.save(key, ContentFile(image.png))
            written.append(saved)
            if saved != key:
                raise RuntimeError(f"storage renamed {key} to {saved}")
        item = DatasetItem(
            dataset=dataset,
            workspace_id=dataset.workspace_id,
            source_name=image.source_name[:300],
            kind=ItemKind.VIDEO_FRAME if image.kind == "video_frame" else ItemKind.IMAGE,
            key=key,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            phash=image.phash,
            machine_caption=_machine_caption(image),
            position=position,
        )
        item.caption = _auto_caption(dataset, item)
        items.append(item)
        position += 1
    return DatasetItem.objects.bulk_create(items)


def _remove(keys: list[str]) -> None:
    for key in keys:
        try:
            default_storage.delete(key)
        except OSError:
            logger.warning("could not remove %s after a failed upload", key, exc_info=True)


@dataclass(frozen=True)
class DatasetChange:
    dataset: Dataset
    added: int
    notices: list[str]


def dataset_create(
    *,
    auth: WorkspaceAuth,
    files: UploadedFiles,
    name: str = "",
    description: str = "",
    goal_type: str = GoalType.SUBJECT,
    trigger_word: str = "",
) -> DatasetChange:
    """Check every file, then store the images and write the dataset in one go (or nothing at all)."""
    if goal_type not in GoalType.values:
        raise ValidationError({"goal_type": f"Choose one of {', '.join(GoalType.values)}."})
    intake = read_uploads(files)
    workspace = auth.workspace
    name = (name or "").strip()[:100] or f"Dataset of {timezone.now():%b %d, %H:%M}"
    word = (
        _clean_trigger(trigger_word, workspace=workspace)
        if trigger_word
        else make_trigger_word(name, taken_trigger_words(workspace=workspace))
    )
    written: list[str] = []
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                workspace=workspace,
                created_by=auth.user,
                name=name,
                description=(description or "").strip()[:2000],
                goal_type=goal_type,
                trigger_word=word,
            )
            items = _store_images(dataset, intake, written)
    except BaseException:
        _remove(written)
        raise
    return DatasetChange(dataset, len(items), intake.notices)


def dataset_add_files(*, dataset: Dataset, files: UploadedFiles) -> DatasetChange:
    intake = read_uploads(files, already_stored=dataset.items.count())
    written: list[str] = []
    try:
        with transaction.atomic():
            Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
            items = _store_images(dataset, intake, written)
            dataset.save(update_fields=["updated_at"])
    except BaseException:
        _remove(written)
        raise
    return DatasetChange(dataset, len(items), intake.notices)


@transaction.atomic
def dataset_update(
    *,
    dataset: Dataset,
    name: str | None = None,
    description: str | None = None,
    goal_type: str | None = None,
    trigger_word: str | None = None,
) -> Dataset:
    """Edit the goal. Generated captions follow the new description; edited ones keep their text with
    a renamed trigger word swapped in."""
    old_trigger = dataset.trigger_word
    if name is not None:
        if not name.strip():
            raise ValidationError({"name": "Give the LoRA a name."})
        dataset.name = name.strip()[:100]
    if description is not None:
        dataset.description = description.strip()[:2000]
    if goal_type is not None:
        if goal_type not in GoalType.values:
            raise ValidationError({"goal_type": f"Choose one of {', '.join(GoalType.values)}."})
        dataset.goal_type = goal_type
    if trigger_word is not None and trigger_word.strip().lower() != old_trigger:
        dataset.trigger_word = _clean_trigger(trigger_word, workspace=dataset.workspace, dataset=dataset)
    dataset.save()
    items = list(dataset.items.all())
    for item in items:
        item.caption = (
            _auto_caption(dataset, item)
            if item.caption_auto
            else replace_trigger(item.caption, old_trigger, dataset.trigger_word)
        )
    DatasetItem.objects.bulk_update(items, ["caption"])
    return dataset


@transaction.atomic
def dataset_set_captions(*, dataset: Dataset, captions: dict[str, str]) -> Dataset:
    """Set captions by item id; an empty caption goes back to the generated one."""
    items = {str(item.pk): item for item in dataset.items.all()}
    unknown = [item_id for item_id in captions if item_id not in items]
    if unknown:
        raise ValidationError({"captions": f"No image {unknown[0]} in this dataset."})
    changed = []
    for item_id, text in captions.items():
        item = items[item_id]
        text = " ".join(str(text).split())[:1000]
        item.caption, item.caption_auto = (text, False) if text else (_auto_caption(dataset, item), True)
        changed.append(item)
    DatasetItem.objects.bulk_update(changed, ["caption", "caption_auto"])
    return dataset


def _active_jobs(dataset: Dataset) -> list[TrainingJob]:
    return list(dataset.training_jobs.filter(status__in=[Status.STARTING, Status.PROCESSING]))


def dataset_item_delete(*, item: DatasetItem) -> None:
    dataset = item.dataset
    in_use = any(item.key == frozen["key"] for job in _active_jobs(dataset) for frozen in job.items)
    key = item.key
    item.delete()
    if not in_use:
        transaction.on_commit(lambda: _remove([key]))


def dataset_delete(*, dataset: Dataset) -> None:
    if _active_jobs(dataset):
        raise ValidationError(
            {"dataset": "A training is running on this dataset; cancel it or wait until it ends."}
        )
    keys = list(dataset.items.values_list("key", flat=True))
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: _remove(keys))


# -- training jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    job: TrainingJob
    created: bool


def sample_prompts(*, dataset: Dataset, items: list[DatasetItem]) -> list[str]:
    """What each checkpoint draws: the first image's caption, and the trigger word in a new setting."""
    first = items[0].caption if items else dataset.trigger_word
    novel = (
        f"a city street at dusk in the style of {dataset.trigger_word}"
        if dataset.goal_type == GoalType.STYLE
        else f"a photo of {dataset.trigger_word} in a sunlit garden"
    )
    return [first, novel]


def training_submit(
    *,
    auth: WorkspaceAuth,
    dataset: Dataset,
    model_id: object,
    name: str = "",
    description: str | None = None,
    goal_type: str | None = None,
    trigger_word: str | None = None,
    params: dict[str, Any] | None = None,
    webhook: str = "",
    webhook_events_filter: list[str] | None = None,
    idempotency_key: str = "",
) -> Submitted:
    """Check the goal, the parameters and the dataset, write the job, and queue it after commit."""
    from studio.services import _clean_webhook

    from .catalog import trainable_model
    from .plan import wants_quick_preset

    idempotency_key = idempotency_key_of(idempotency_key)
    earlier = training_for_idempotency_key(workspace=auth.workspace, key=idempotency_key)
    if earlier is not None:
        return Submitted(earlier, False)
    model, store_ref = trainable_model(workspace=auth.workspace, id=model_id)
    try:
        resolved = resolve_params(model.family, params or {}, quick=wants_quick_preset(model))
    except ParamError as exc:
        raise ValidationError({"params": exc.errors}) from exc
    events_filter = _clean_webhook(webhook, webhook_events_filter)
    if any(value is not None for value in (description, goal_type, trigger_word)) or name:
        dataset = dataset_update(
            dataset=dataset,
            name=name or None,
            description=description,
            goal_type=goal_type,
            trigger_word=trigger_word,
        )
    checks = dataset_checks(dataset=dataset, family=model.family, params=resolved)
    if not checks["ok"]:
        errors = [c["message"] for c in checks["checks"] if c["level"] == "error"]
        raise ValidationError({"dataset": " ".join(errors)})
    items = list(dataset.items.all())
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                workspace=auth.workspace,
                created_by=auth.user,
                api_key=auth.api_key,
                dataset=dataset,
                name=(name or dataset.name)[:100],
                description=dataset.description,
                goal_type=dataset.goal_type,
                trigger_word=dataset.trigger_word,
                base_model=model,
                base_model_ref=store_ref,
                family=model.family,
                params=resolved,
                total_steps=resolved["steps"],
                items=[
                    {"key": i.key, "caption": i.caption, "width": i.width, "height": i.height} for i in items
                ],
                sample_prompts=sample_prompts(dataset=dataset, items=items),
                webhook=webhook,
                webhook_events_filter=events_filter,
                idempotency_key=idempotency_key,
            )
            events.emit_state_on_commit(job)
            transaction.on_commit(lambda: enqueue(job))
    except IntegrityError:
        job = TrainingJob.objects.get(workspace=auth.workspace, idempotency_key=idempotency_key)
        return Submitted(job, False)
    return Submitted(job, True)


def enqueue(job: TrainingJob) -> None:
    from .tasks import run_training

    run_training.apply_async(args=[str(job.pk)], queue="gpu")


@transaction.atomic
def training_cancel(*, job: TrainingJob) -> TrainingJob:
    """A queued training ends at once; a running one stops before its next step."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.is_terminal:
        return job
    job.cancel_requested = True
    fields = ["cancel_requested"]
    if job.status == Status.STARTING and not job.lease_owner:
        job.status, job.completed_at = Status.CANCELED, timezone.now()
        fields += ["status", "completed_at"]
    job.save(update_fields=fields)
    job_id = str(job.pk)
    transaction.on_commit(lambda: request_cancel(job_id))
    if job.status == Status.CANCELED:
        events.job_finished_on_commit(job)
    return job
