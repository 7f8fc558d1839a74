"""Datasets of training images and the LoRA training jobs that learn from them.

A dataset belongs to one workspace; its images are stored re-encoded (PNG, no metadata) under
``ws/<workspace>/datasets/<dataset>/``. A training job reads a dataset, runs on the `gpu` queue with a
lease like a generation, checkpoints to storage, and on success registers a workspace-private
``LoraAdapter`` in the catalog. Rows are fetched through ``training.access`` only.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from studio.models import TERMINAL, Status


class GoalType(models.TextChoices):
    SUBJECT = "subject", "A subject (a person, a pet, an object, a character)"
    STYLE = "style", "A style (a look, a medium, an artist's manner)"


class Dataset(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="datasets")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=100, help_text="What the LoRA will be called.")
    description = models.TextField(
        blank=True,
        max_length=2000,
        help_text="What the images mean: who or what they show, or the style they share.",
    )
    goal_type = models.CharField(max_length=10, choices=GoalType.choices, default=GoalType.SUBJECT)
    trigger_word = models.CharField(max_length=40, help_text="The word that calls the LoRA up in a prompt.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "trigger_word"], name="one_trigger_word_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def storage_prefix(self) -> str:
        return f"ws/{self.workspace_id}/datasets/{self.pk}/"


class ItemKind(models.TextChoices):
    IMAGE = "image", "Image"
    VIDEO_FRAME = "video_frame", "Frame of a video"


class DatasetItem(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=ItemKind.choices, default=ItemKind.IMAGE)
    source_name = models.CharField(max_length=300, help_text="The uploaded file (and frame) this came from.")
    key = models.CharField(max_length=300, help_text="Storage key of the re-encoded PNG.")
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    phash = models.CharField(max_length=16, help_text="Perceptual hash, for near-duplicate checks.")
    caption = models.TextField(blank=True, max_length=1000)
    caption_auto = models.BooleanField(
        default=True, help_text="Still the generated caption (not edited by hand)."
    )
    machine_caption = models.CharField(
        max_length=300, blank=True, help_text="What the captioning model saw, when one is installed."
    )
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="no_identical_images_in_dataset")
        ]

    def __str__(self) -> str:
        return self.source_name


class TrainingJob(models.Model):
    """One LoRA training run. Statuses follow the generation jobs' (Replicate's) vocabulary."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="training_jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dataset = models.ForeignKey(
        Dataset,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_jobs",
        help_text="Empty once the dataset is deleted; `items` keeps what was trained on.",
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    goal_type = models.CharField(max_length=10, choices=GoalType.choices, default=GoalType.SUBJECT)
    trigger_word = models.CharField(max_length=40)
    base_model = models.ForeignKey(
        "models_catalog.BaseModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_model_ref = models.CharField(max_length=300, help_text="Model-store reference the worker loads.")
    family = models.CharField(max_length=8)
    params = models.JSONField(default=dict, help_text="Resolved parameters (preset + overrides).")
    items = models.JSONField(default=list, help_text="Images and captions as frozen at submission.")
    sample_prompts = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.STARTING, db_index=True)
    progress = models.FloatField(default=0.0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss_history = models.JSONField(
        default=list, blank=True, help_text="[step, loss, run] per executed step."
    )
    checkpoints = models.JSONField(default=list, blank=True, help_text="Each checkpoint's step and samples.")
    latest_checkpoint_step = models.PositiveIntegerField(null=True, blank=True)
    runs = models.JSONField(
        default=list, blank=True, help_text="Each attempt: worker, resumed from, first step."
    )
    lora = models.ForeignKey(
        "models_catalog.LoraAdapter", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lora_key = models.CharField(max_length=300, blank=True)
    kohya_key = models.CharField(max_length=300, blank=True)
    lora_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    logs = models.TextField(blank=True)
    reproducibility = models.JSONField(default=dict, blank=True)
    webhook = models.URLField(max_length=1000, blank=True)
    webhook_events_filter = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="one_training_per_idempotency_key",
            )
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def storage_prefix(self) -> str:
        return f"ws/{self.workspace_id}/trainings/{self.pk}/"
