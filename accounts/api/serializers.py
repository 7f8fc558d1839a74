from __future__ import annotations

from rest_framework import serializers

from ..models import ApiKey, Scope


class ApiKeyOutputSerializer(serializers.ModelSerializer[ApiKey]):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "revoked_at", "is_active",
        ]


class ApiKeyCreateInputSerializer(serializers.Serializer[None]):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="API key")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False,
        default=lambda: [Scope.READ, Scope.GENERATE],
    )


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    key = serializers.CharField(read_only=True, help_text="The whole key. Shown once; store it now.")

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "key"]


class MeSerializer(serializers.Serializer[None]):
    user = serializers.DictField()
    workspace = serializers.DictField()
    role = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    api_key = serializers.DictField(allow_null=True)
