"""Generation jobs: one row per request (studio, raw workflow graph, Replicate or OpenAI surface)."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    STARTING = "starting", "Starting"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)


class Source(models.TextChoices):
    STUDIO = "studio", "Studio request"
    WORKFLOW = "workflow", "Workflow graph"
    REPLICATE = "replicate", "Replicate-compatible API"
    OPENAI = "openai", "OpenAI-compatible API"


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="generations")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STUDIO)
    request = models.JSONField(default=dict, blank=True, help_text="The request as the client sent it (validated).")
    graph = models.JSONField(help_text="The workflow graph that runs (compiled from the request, or given).")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.STARTING, db_index=True)
    progress = models.FloatField(default=0.0)
    current_node = models.CharField(max_length=64, blank=True)
    current_title = models.CharField(max_length=120, blank=True)
    node_states = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=list, blank=True)
    preview_key = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    logs = models.TextField(blank=True)
    reproducibility = models.JSONField(default=dict, blank=True)
    webhook = models.URLField(max_length=1000, blank=True)
    webhook_events_filter = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    model_ref = models.CharField(max_length=200, blank=True, db_index=True)
    lora_refs = models.JSONField(default=list, blank=True)
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
                fields=["workspace", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                name="one_generation_per_idempotency_key",
            )
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def predict_seconds(self) -> float | None:
        if self.started_at and self.completed_at:
            return (self.completed_at - self.started_at).total_seconds()
        return None


class WebhookSecret(models.Model):
    """The workspace's Standard Webhooks signing secret (`whsec_…`), made on first use, rotatable."""

    workspace = models.OneToOneField("accounts.Workspace", on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=100)
    rotated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Webhook secret of {self.workspace_id}"


class WebhookEndpoint(models.Model):
    """A URL that receives every job event of the workspace (configured in settings)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=1000)
    events = models.JSONField(default=list, help_text="Empty means every event.")
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One message to one URL. Its id is the `webhook-id` header and stays the same on every retry."""

    id = models.CharField(primary_key=True, max_length=40)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    generation = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="webhook_deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=1000)
    event = models.CharField(max_length=20)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} → {self.url} ({self.status})"
