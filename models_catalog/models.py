"""The catalog: base models, LoRA adapters, generation intents, their files, installs and sync reports.

Catalog rows are public (curated by staff: visible once approved and not hidden) or private to one
workspace (imported or trained by it: `workspace` is set). Rows are fetched through `access.py` only.
An upstream item is identified by (source, external_id, external_version); `revision` pins exact content.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from .families import Family, Rating, highest_rating


class Source(models.TextChoices):
    HUGGINGFACE = "huggingface", "Hugging Face"
    CIVITAI = "civitai", "CivitAI"
    LOCAL = "local", "Local"
    UPLOAD = "upload", "Upload"
    TRAINED = "trained", "Trained here"


class Status(models.TextChoices):
    AVAILABLE = "available", "Available (not installed)"
    INSTALLING = "installing", "Installing"
    INSTALLED = "installed", "Installed"
    FAILED = "failed", "Install failed"
    WITHDRAWN = "withdrawn", "Withdrawn upstream"


class LoraFormat(models.TextChoices):
    UNKNOWN = "", "Not inspected"
    KOHYA = "kohya", "kohya (sd-scripts)"
    DIFFUSERS = "diffusers", "diffusers"
    PEFT = "peft", "peft"
    UNRECOGNISED = "unknown", "Unrecognised"


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Intent(models.Model):
    """A popular thing people want to make ("anime", "product photo") and how to make it well."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    example_prompts = models.JSONField(default=list, blank=True)
    # [phrase, weight] pairs the lexical matcher scores; multi-word phrases match as a sequence.
    keywords = models.JSONField(default=list, blank=True)
    suggested_family = models.CharField(max_length=16, choices=Family.choices, default=Family.SDXL)
    detailers = models.JSONField(
        default=list, blank=True, help_text='e.g. [{"name": "face", "reason": "..."}]'
    )
    negative_prompt = models.TextField(blank=True)
    default_settings = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self) -> str:
        return self.name


def rating_within_limit_q(maximum: int | None = None) -> Q:
    """Rows whose strongest content rating is within the operator's limit (KIZY_CATALOG_NSFW_MAX).

    Read on every query, so lowering the limit hides rows synced earlier above it at once.
    A bitmask's highest bit is <= the limit exactly when the mask is below twice the limit's highest bit.
    """
    limit = highest_rating(settings.KIZY_CATALOG_NSFW_MAX if maximum is None else maximum)
    return Q(nsfw_level__lt=2 * limit) if limit else Q(nsfw_level=0)


def visible_q(workspace: object) -> Q:
    """Public curated rows, plus the workspace's own private ones (tenancy lives in this one Q), within
    the operator's content-rating limit."""
    public = Q(workspace__isnull=True, approved=True, hidden=False)
    scope = public | Q(workspace=workspace) if workspace is not None else public
    return scope & rating_within_limit_q()


class CatalogEntry(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="private_%(class)ss",
        help_text="Set for a private entry (imported or trained by that workspace); empty if public.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    family = models.CharField(max_length=16, choices=Family.choices, default=Family.UNKNOWN, db_index=True)
    upstream_base_model = models.CharField(
        max_length=100, blank=True, help_text="The source's own base-model name."
    )
    family_flagged = models.BooleanField(
        default=False,
        help_text="The source's base model is unknown to Kizy or cannot run here; check by hand.",
    )
    source = models.CharField(max_length=16, choices=Source.choices, db_index=True)
    external_id = models.CharField(
        max_length=200, help_text="CivitAI model id, Hugging Face repo id, local name."
    )
    external_version = models.CharField(max_length=100, blank=True, help_text="CivitAI model-version id.")
    revision = models.CharField(
        max_length=100, blank=True, help_text="Exact upstream content (commit, version)."
    )
    version_name = models.CharField(max_length=100, blank=True)
    source_url = models.URLField(max_length=500, blank=True)
    creator_name = models.CharField(max_length=100, blank=True)
    license = models.CharField(max_length=100, blank=True)
    commercial_use = models.JSONField(
        default=list, blank=True, help_text="Uses the licence allows, e.g. Image, Sell."
    )
    commercial_use_allowed = models.BooleanField(null=True, blank=True)
    # CivitAI's other permissions (None where the source publishes none, e.g. Hugging Face).
    allow_no_credit = models.BooleanField(
        null=True, blank=True, help_text="May be used without crediting the creator (CivitAI allowNoCredit)."
    )
    allow_derivatives = models.BooleanField(
        null=True, blank=True, help_text="Merges and derivatives may be shared (CivitAI allowDerivatives)."
    )
    allow_different_license = models.BooleanField(
        null=True,
        blank=True,
        help_text="Derivatives may carry other permissions (CivitAI allowDifferentLicense).",
    )
    allow_unverified = models.BooleanField(
        default=False,
        help_text="Curator override: install even though the source publishes no SHA-256 for the file.",
    )
    nsfw_level = models.PositiveIntegerField(default=0, help_text="CivitAI nsfwLevel bitmask (0 = unrated).")
    tags = models.ManyToManyField(Tag, blank=True, related_name="%(class)ss")
    preview_images = models.JSONField(default=list, blank=True)
    default_settings = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AVAILABLE, db_index=True)
    status_message = models.TextField(blank=True)
    sha256 = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="SHA-256 of the primary file."
    )
    size_bytes = models.BigIntegerField(null=True, blank=True)
    store_ref = models.CharField(
        max_length=300, blank=True, help_text="Model-store reference once installed."
    )
    same_as = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The first catalog entry with the same file (SHA-256), from any source.",
    )
    approved = models.BooleanField(default=False, db_index=True)
    featured = models.BooleanField(default=False, db_index=True)
    hidden = models.BooleanField(default=False, db_index=True)
    is_demo = models.BooleanField(default=False, help_text="Tiny random-weight demo model: draws noise.")
    download_count = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    upstream_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    synced_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-featured", "-approved", "-download_count", "name"]

    def __str__(self) -> str:
        version = f" {self.version_name}" if self.version_name else ""
        return f"{self.name}{version}"

    @property
    def is_private(self) -> bool:
        return self.workspace_id is not None

    @property
    def rating(self) -> int:
        return highest_rating(self.nsfw_level)

    @property
    def rating_label(self) -> str:
        return Rating(self.rating).label if self.rating in Rating.values else str(self.rating)

    @property
    def thumbnail_url(self) -> str:
        return self.preview_images[0].get("url", "") if self.preview_images else ""


def _unique_upstream(name: str) -> list[models.UniqueConstraint]:
    fields = ["source", "external_id", "external_version"]
    return [
        models.UniqueConstraint(
            fields=fields, condition=Q(workspace__isnull=True), name=f"{name}_public_upstream"
        ),
        models.UniqueConstraint(
            fields=["workspace", *fields],
            condition=Q(workspace__isnull=False),
            name=f"{name}_private_upstream",
        ),
    ]


class BaseModel(CatalogEntry):
    """A checkpoint or diffusers pipeline that generations run on."""

    class Layout(models.TextChoices):
        DIFFUSERS = "diffusers", "diffusers folder"
        SINGLE_FILE = "single_file", "single .safetensors file"

    layout = models.CharField(max_length=16, choices=Layout.choices, default=Layout.DIFFUSERS)

    class Meta(CatalogEntry.Meta):
        constraints = _unique_upstream("basemodel")
        verbose_name = "base model"


class LoraAdapter(CatalogEntry):
    """A LoRA: small weights applied on top of a base model of the same family."""

    trigger_words = models.JSONField(default=list, blank=True)
    intents = models.ManyToManyField(Intent, blank=True, related_name="loras")
    recommended_weight = models.FloatField(default=0.8)
    lora_format = models.CharField(max_length=16, choices=LoraFormat.choices, blank=True, default="")
    detected_family = models.CharField(max_length=16, choices=Family.choices, blank=True, default="")

    class Meta(CatalogEntry.Meta):
        constraints = _unique_upstream("lora")
        verbose_name = "LoRA adapter"


class ModelFile(models.Model):
    """One file of a catalog entry, with the size and SHA-256 the source publishes."""

    base_model = models.ForeignKey(
        BaseModel, null=True, blank=True, on_delete=models.CASCADE, related_name="files"
    )
    lora = models.ForeignKey(
        LoraAdapter, null=True, blank=True, on_delete=models.CASCADE, related_name="files"
    )
    name = models.CharField(max_length=300, help_text="Path inside the repository, or the file name.")
    kind = models.CharField(max_length=32, blank=True, default="Model")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    git_blob_id = models.CharField(
        max_length=40, blank=True, help_text="Hugging Face non-LFS files: git blob SHA-1."
    )
    download_url = models.URLField(max_length=1000, blank=True)
    is_primary = models.BooleanField(default=False)
    local_path = models.CharField(max_length=1000, blank=True)
    installed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-is_primary", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(base_model__isnull=True, lora__isnull=False)
                | Q(base_model__isnull=False, lora__isnull=True),
                name="modelfile_one_owner",
            ),
            models.UniqueConstraint(fields=["base_model", "name"], name="modelfile_unique_base_name"),
            models.UniqueConstraint(fields=["lora", "name"], name="modelfile_unique_lora_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_safetensors(self) -> bool:
        return self.name.lower().endswith(".safetensors")


class Download(models.Model):
    """An install of a catalog entry's files into the model store, with progress for the UI."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        DOWNLOADING = "downloading", "Downloading"
        VERIFYING = "verifying", "Verifying"
        INSTALLED = "installed", "Installed"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    base_model = models.ForeignKey(
        BaseModel, null=True, blank=True, on_delete=models.CASCADE, related_name="downloads"
    )
    lora = models.ForeignKey(
        LoraAdapter, null=True, blank=True, on_delete=models.CASCADE, related_name="downloads"
    )
    workspace = models.ForeignKey(
        "accounts.Workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The workspace that asked for it (private imports); empty for staff installs.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"install of {self.base_model or self.lora} ({self.state})"

    @property
    def entry(self) -> BaseModel | LoraAdapter:
        entry = self.base_model or self.lora
        assert entry is not None
        return entry

    @property
    def percent(self) -> int | None:
        if not self.bytes_total:
            return None
        return min(100, int(100 * self.bytes_done / self.bytes_total))


class SyncReport(models.Model):
    """What one sync run did: kept so curators can see what changed and what failed."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Finished with errors"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=16, choices=Source.choices)
    query = models.CharField(max_length=200, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    trigger = models.CharField(max_length=16, default="command", help_text="command, beat or admin")
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    seen = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    withdrawn = models.PositiveIntegerField(default=0)
    filtered = models.PositiveIntegerField(default=0, help_text="Skipped by the content-rating filter.")
    flagged = models.PositiveIntegerField(default=0, help_text="Kept with an unknown base-model family.")
    errors = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} sync {self.started_at:%Y-%m-%d %H:%M} ({self.outcome})"

    @property
    def error_count(self) -> int:
        return len(self.errors)
