"""Serializers for the catalog API: nested input validation, flat predictable output."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..access import store_ref_of
from ..families import RUNNABLE_FAMILY_CHOICES, Rating
from ..models import BaseModel, CatalogEntry, Download, Intent, LoraAdapter, ModelFile, visible_q


class FileSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelFile
        fields = ["name", "kind", "size_bytes", "sha256", "is_primary"]


class DownloadSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Download
        fields = [
            "id",
            "state",
            "bytes_done",
            "bytes_total",
            "percent",
            "message",
            "created_at",
            "finished_at",
        ]


class _EntrySerializer(serializers.ModelSerializer):
    family_label = serializers.CharField(source="get_family_display", read_only=True)
    source_label = serializers.CharField(source="get_source_display", read_only=True)
    visibility = serializers.SerializerMethodField()
    rating = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    thumbnail_url = serializers.CharField(read_only=True)
    files = FileSerializer(many=True, read_only=True)
    ready = serializers.SerializerMethodField(help_text="True when a worker can load it now.")
    install = serializers.SerializerMethodField(
        help_text="The latest install (state and progress), or null if it was never installed here."
    )
    same_as = serializers.SerializerMethodField(
        help_text="The first entry with the same file (SHA-256) that you can see, or null."
    )

    common_fields = [
        "id",
        "name",
        "version_name",
        "description",
        "family",
        "family_label",
        "upstream_base_model",
        "family_flagged",
        "source",
        "source_label",
        "external_id",
        "external_version",
        "revision",
        "source_url",
        "creator_name",
        "license",
        "commercial_use",
        "commercial_use_allowed",
        "allow_no_credit",
        "allow_derivatives",
        "allow_different_license",
        "rating",
        "nsfw_level",
        "tags",
        "thumbnail_url",
        "preview_images",
        "default_settings",
        "status",
        "status_message",
        "ready",
        "sha256",
        "size_bytes",
        "files",
        "visibility",
        "approved",
        "featured",
        "is_demo",
        "same_as",
        "download_count",
        "likes",
        "created_at",
        "updated_at",
    ]

    def get_visibility(self, entry: CatalogEntry) -> str:
        return "private" if entry.workspace_id else "public"

    def get_rating(self, entry: CatalogEntry) -> str:
        return Rating(entry.rating).label if entry.rating in Rating.values else "Unrated"

    def get_tags(self, entry: CatalogEntry) -> list[str]:
        return [tag.name for tag in entry.tags.all()]

    def get_ready(self, entry: CatalogEntry) -> bool:
        return store_ref_of(entry) is not None

    def get_install(self, entry: CatalogEntry) -> dict[str, Any] | None:
        latest = entry.downloads.order_by("-created_at").first()  # type: ignore[attr-defined]
        return DownloadSerializer(latest).data if latest else None

    def _requesting_workspace(self) -> Any:
        view = self.context.get("view")
        return getattr(view, "workspace", None) if view is not None else self.context.get("workspace")

    def get_same_as(self, entry: CatalogEntry) -> str | None:
        """Only a target the requester may open: never another workspace's private entry (T3)."""
        if entry.same_as_id is None:
            return None
        visible = type(entry).objects.filter(visible_q(self._requesting_workspace()), pk=entry.same_as_id)
        return str(entry.same_as_id) if visible.exists() else None


class ModelOutputSerializer(_EntrySerializer):
    class Meta:
        model = BaseModel
        fields = [*_EntrySerializer.common_fields, "layout", "install"]


class LoraOutputSerializer(_EntrySerializer):
    intents = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta:
        model = LoraAdapter
        fields = [
            *_EntrySerializer.common_fields,
            "trigger_words",
            "intents",
            "recommended_weight",
            "lora_format",
            "detected_family",
            "install",
        ]



class IntentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Intent
        fields = [
            "slug",
            "name",
            "description",
            "example_prompts",
            "suggested_family",
            "detailers",
            "negative_prompt",
            "default_settings",
        ]


class LoraImportInputSerializer(serializers.Serializer):
    civitai_url = serializers.URLField(
        required=False, max_length=500, help_text="A CivitAI model or model-version link."
    )
    huggingface_repo = serializers.CharField(required=False, max_length=200, help_text="owner/name")
    file = serializers.FileField(required=False, help_text="A .safetensors LoRA (multipart upload).")
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)
    family = serializers.ChoiceField(choices=RUNNABLE_FAMILY_CHOICES, required=False)
    trigger_words = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=20)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=20)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("civitai_url", "huggingface_repo", "file") if data.get(k)]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of civitai_url, huggingface_repo or file.")
        return data


class InstallOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The catalog entry.")
    status = serializers.CharField(help_text="The entry's status: installing, installed, failed...")
    ready = serializers.BooleanField(help_text="True when a worker can load it now.")
    queued = serializers.BooleanField(help_text="False when it was already installed (nothing to do).")
    install = DownloadSerializer(allow_null=True, help_text="Poll the entry's detail for progress.")


class LoraImportOutputSerializer(serializers.Serializer):
    lora = LoraOutputSerializer()
    download = DownloadSerializer(allow_null=True)
    created = serializers.BooleanField()


class SuggestInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=2000, trim_whitespace=True)
    model = serializers.UUIDField(required=False, allow_null=True, help_text="Keep this base model; pick the rest.")


class CompatibilityOutputSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    reason = serializers.CharField()
    checked_shapes = serializers.BooleanField()


class _IntentPickSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    score = serializers.FloatField(help_text="0-1; the list is sorted by it, best first.")
    reason = serializers.CharField()


class _ModelPickSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    family = serializers.CharField()
    installed = serializers.BooleanField()
    reason = serializers.CharField()


class _LoraPickSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    weight = serializers.FloatField()
    trigger_words = serializers.ListField(child=serializers.CharField())
    curated = serializers.BooleanField()
    private = serializers.BooleanField()
    installed = serializers.BooleanField()
    reason = serializers.CharField()


class _DetailerPickSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField()


class SuggestOutputSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    engine = serializers.CharField(help_text="lexical, or hybrid when sentence embeddings are installed")
    intents = _IntentPickSerializer(many=True)
    model = _ModelPickSerializer(allow_null=True)
    model_reason = serializers.CharField()
    loras = _LoraPickSerializer(many=True)
    detailers = _DetailerPickSerializer(many=True)
    prompt_with_triggers = serializers.CharField()
    negative_prompt = serializers.CharField()
    settings = serializers.DictField()
