"""Reads: the checks shown before training, and the choices the forms offer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from accounts.models import Workspace
from gpu_workers.training.images import hash_distance, nearest_bucket
from gpu_workers.training.presets import FAMILY_LABELS, NATIVE_RESOLUTION, RECOMMENDED_MIN_IMAGES

from .models import Dataset, DatasetItem, GoalType, TrainingJob

NEAR_DUPLICATE_BITS = 6  # of 63: pictures this close are the same shot, resized or re-compressed
UPSCALE_WARNING = 1.5  # an image stretched more than this to fill its bucket comes out soft


@dataclass
class Check:
    id: str
    level: str  # "ok" | "info" | "warning" | "error"
    title: str
    message: str
    items: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "title": self.title,
            "message": self.message,
            "items": self.items,
            "groups": self.groups,
        }


def _near_duplicate_groups(items: list[DatasetItem]) -> list[list[DatasetItem]]:
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if hash_distance(items[i].phash, items[j].phash) <= NEAR_DUPLICATE_BITS:
                parent[find(j)] = find(i)
    groups: dict[int, list[DatasetItem]] = {}
    for index, item in enumerate(items):
        groups.setdefault(find(index), []).append(item)
    return [group for group in groups.values() if len(group) > 1]


def dataset_checks(*, dataset: Dataset, family: str, params: dict[str, Any]) -> dict[str, Any]:
    """What an artist should know before training: count, duplicates, size, aspect ratios, captions."""
    items = list(dataset.items.all())
    resolution = int(params.get("resolution") or NATIVE_RESOLUTION[family])
    use_buckets = bool(params.get("buckets", True))
    label = FAMILY_LABELS.get(family, family)
    checks: list[Check] = []

    minimum = RECOMMENDED_MIN_IMAGES.get(dataset.goal_type, 5)
    if not items:
        checks.append(Check("count", "error", "No images", "Add images before training."))
    elif len(items) < minimum:
        goal = "a style" if dataset.goal_type == GoalType.STYLE else "a subject"
        checks.append(
            Check(
                "count",
                "warning",
                "Few images",
                f"{len(items)} image(s). For {goal}, {minimum} or more varied images give a LoRA "
                "that generalises; with fewer it tends to copy them.",
            )
        )
    else:
        checks.append(Check("count", "ok", "Enough images", f"{len(items)} images."))

    groups = _near_duplicate_groups(items)
    if groups:
        names = "; ".join(" ≈ ".join(i.source_name for i in group) for group in groups[:5])
        checks.append(
            Check(
                "near_duplicates",
                "warning",
                "Near-duplicates",
                f"{sum(len(g) for g in groups)} images are nearly the same picture ({names}). Keep the "
                "best of each group: duplicates make the LoRA copy that shot.",
                items=[str(i.pk) for g in groups for i in g],
                groups=[[str(i.pk) for i in g] for g in groups],
            )
        )
    elif items:
        checks.append(Check("near_duplicates", "ok", "No near-duplicates", "Every picture is distinct."))

    buckets: Counter[tuple[int, int]] = Counter()
    bucket_items: dict[tuple[int, int], list[str]] = {}
    small: list[DatasetItem] = []
    for item in items:
        bucket = nearest_bucket(item.width, item.height, resolution, use_buckets=use_buckets)
        buckets[bucket] += 1
        bucket_items.setdefault(bucket, []).append(str(item.pk))
        if max(bucket[0] / item.width, bucket[1] / item.height) > UPSCALE_WARNING:
            small.append(item)
    if small:
        smallest = min(small, key=lambda i: i.width * i.height)
        checks.append(
            Check(
                "too_small",
                "warning",
                f"Small for {label}",
                f"{len(small)} image(s) are smaller than {label} training at {resolution} px needs (the "
                f"smallest, {smallest.source_name}, is {smallest.width}×{smallest.height}); they will be "
                "upscaled and come out soft. Use larger originals if you have them.",
                items=[str(i.pk) for i in small],
            )
        )
    elif items:
        checks.append(
            Check("too_small", "ok", "Large enough", f"Every image covers {resolution} px training.")
        )

    ratios = {round(i.width / i.height, 1) for i in items}
    if len(ratios) > 1 and not use_buckets:
        checks.append(
            Check(
                "aspect_ratios",
                "warning",
                "Mixed aspect ratios",
                "Images have different shapes and aspect-ratio buckets are off: each will be centre-"
                "cropped to a square, losing its edges. Turn buckets on to keep whole pictures.",
            )
        )
    elif len(buckets) > 1:
        lonely = [b for b, n in buckets.items() if n < int(params.get("batch_size") or 1)]
        extra = (
            " Some buckets hold fewer images than the batch size; their batches are smaller."
            if lonely
            else ""
        )
        checks.append(
            Check(
                "aspect_ratios",
                "info",
                "Mixed aspect ratios",
                f"Images train in {len(buckets)} shapes (buckets), so none is cropped to a square." + extra,
            )
        )
    elif items:
        checks.append(Check("aspect_ratios", "ok", "One shape", "Every image trains at the same shape."))

    trigger = dataset.trigger_word
    missing = [i for i in items if trigger and trigger not in i.caption]
    empty = [i for i in items if not i.caption.strip()]
    if empty or missing:
        checks.append(
            Check(
                "captions",
                "warning",
                "Captions",
                f"{len(empty)} caption(s) are empty and {len(missing)} do not mention the trigger word "
                f"“{trigger}”; the LoRA learns what the trigger word stands for from the captions.",
                items=[str(i.pk) for i in {*empty, *missing}],
            )
        )
    elif items:
        checks.append(Check("captions", "ok", "Captions", "Every caption mentions the trigger word."))

    preview = [
        {"width": w, "height": h, "count": n, "items": bucket_items[(w, h)]}
        for (w, h), n in sorted(buckets.items(), key=lambda kv: -kv[1])
    ]
    return {
        "ok": not any(c.level == "error" for c in checks),
        "family": family,
        "family_label": label,
        "resolution": resolution,
        "buckets_enabled": use_buckets,
        "checks": [c.as_dict() for c in checks],
        "buckets": preview,
    }


def dataset_items(*, dataset: Dataset) -> QuerySet[DatasetItem]:
    return dataset.items.all()


def taken_trigger_words(*, workspace: Workspace) -> set[str]:
    from models_catalog.access import visible_loras

    taken = set(Dataset.objects.filter(workspace=workspace).values_list("trigger_word", flat=True))
    for words in visible_loras(workspace).values_list("trigger_words", flat=True):
        taken.update(str(w).lower() for w in words or [])
    return taken


def idempotency_key_of(raw: str | None) -> str:
    return (raw or "").strip()[:200]


def training_for_idempotency_key(*, workspace: Workspace, key: str) -> TrainingJob | None:
    """The training an earlier request with this Idempotency-Key created, if any."""
    key = idempotency_key_of(key)
    if not key:
        return None
    return TrainingJob.objects.filter(workspace=workspace, idempotency_key=key).first()
