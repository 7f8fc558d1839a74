"""Keep `updated_at` honest when only a LoRA's tags or intents change, so the suggestion indexes
(keyed on count and latest `updated_at`) rebuild in every process without a restart."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils import timezone

from .models import LoraAdapter


def _touch(instance: Any, reverse: bool, pk_set: set[Any] | None) -> None:
    if reverse:  # tag.loraadapters.add(...): the LoRAs are in pk_set (None for clear())
        if pk_set:
            LoraAdapter.objects.filter(pk__in=pk_set).update(updated_at=timezone.now())
        return
    if isinstance(instance, LoraAdapter) and instance.pk:
        LoraAdapter.objects.filter(pk=instance.pk).update(updated_at=timezone.now())


@receiver(m2m_changed, sender=LoraAdapter.tags.through)
@receiver(m2m_changed, sender=LoraAdapter.intents.through)
def lora_relations_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _touch(instance, reverse, pk_set)
