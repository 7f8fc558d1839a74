"""The studio request: what a person (or program) asks for, validated with messages that say what
is allowed. Compiled into a node graph by studio/compiler.py."""
from __future__ import annotations

import difflib
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

ASPECT_RATIOS = {"1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "3:2": (3, 2), "2:3": (2, 3),
                 "16:9": (16, 9), "9:16": (9, 16), "21:9": (21, 9)}
SCHEDULERS = ("default", "euler", "euler_a", "dpm++_2m", "ddim")
# Keys of a stored request (the `request` of a generation) that are not inputs: accepted and dropped,
# so a job's record can be posted again as it is.
RECORD_ONLY_FIELDS = frozenset({"auto_loras"})
DETAILER_NAMES = ("upscale", "upscale_x2", "upscale_x4", "face_fix", "controlnet", "controlnet_canny",
                  "controlnet_depth")


class LoraChoiceSerializer(serializers.Serializer[None]):
    id = serializers.CharField(max_length=200)
    weight = serializers.FloatField(min_value=-2.0, max_value=2.0, default=0.8)


@extend_schema_field({"oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "array", "items": {
    "type": "object", "properties": {"id": {"type": "string"}, "weight": {"type": "number"}}}}]})
class LorasField(serializers.Field):  # type: ignore[type-arg]
    """`"auto"`, or a list of `{id, weight}` (or bare ids)."""

    default_error_messages = {"invalid": 'Give "auto" or a list of {{"id": ..., "weight": ...}} objects.'}

    def to_internal_value(self, data: Any) -> Any:
        if data == "auto":
            return "auto"
        if isinstance(data, str):  # form posts send JSON text
            import json

            try:
                data = json.loads(data) if data.strip() else []
            except ValueError:
                self.fail("invalid")
        if not isinstance(data, list):
            self.fail("invalid")
        if len(data) > 5:
            raise serializers.ValidationError("At most 5 LoRAs can be stacked.")
        items = [{"id": item} if isinstance(item, str) else item for item in data]
        choices = LoraChoiceSerializer(data=items, many=True)
        choices.is_valid(raise_exception=True)
        return list(choices.validated_data)

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class DetailersField(serializers.Field):  # type: ignore[type-arg]
    """`{"upscale": 2|4, "face_fix": true, "controlnet": "canny"|"depth"}` or a list such as
    `["upscale_x4", "face_fix", "controlnet_canny"]`. Normalised to the object form."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            data = [part.strip() for part in data.split(",") if part.strip()]
        result: dict[str, Any] = {}
        if isinstance(data, list):
            for name in data:
                if name not in DETAILER_NAMES:
                    raise serializers.ValidationError(
                        f"Unknown detailer {name!r}; choose from {', '.join(DETAILER_NAMES)}.")
                if name.startswith("upscale"):
                    result["upscale"] = 4 if name.endswith("x4") else 2
                elif name == "face_fix":
                    result["face_fix"] = True
                else:
                    result["controlnet"] = "depth" if name.endswith("depth") else "canny"
            return result
        if not isinstance(data, dict):
            raise serializers.ValidationError('Give a list like ["upscale_x2", "face_fix"] or an object.')
        unknown = set(data) - {"upscale", "face_fix", "controlnet", "controlnet_strength"}
        if unknown:
            raise serializers.ValidationError(f"Unknown detailer(s) {', '.join(sorted(unknown))}; "
                                              "use upscale, face_fix, controlnet.")
        if data.get("upscale") not in (None, False, 2, 4):
            raise serializers.ValidationError("upscale must be 2 or 4.")
        if data.get("controlnet") not in (None, False, "canny", "depth"):
            raise serializers.ValidationError('controlnet must be "canny" or "depth".')
        strength = data.get("controlnet_strength", 0.8)
        if not isinstance(strength, int | float) or not 0 <= strength <= 2:
            raise serializers.ValidationError("controlnet_strength must be between 0 and 2.")
        return {k: v for k, v in data.items() if v not in (None, False)}

    def to_representation(self, value: Any) -> Any:
        return value


class RejectUnknownFields:
    """For serializers of request bodies: a field the serializer does not know (often a misspelling)
    is a 400 naming it, instead of DRF's default of dropping it silently. Read-only fields (echoed
    back from a response) and `ignored_fields` are let through and dropped."""

    ignored_fields: frozenset[str] = frozenset()
    also_allowed: tuple[str, ...] = ()  # read by the view before validation, still named in the message

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            fields = self.fields  # type: ignore[attr-defined]
            read_only = {name for name, field in fields.items() if field.read_only}
            allowed = [name for name in fields if name not in read_only] + list(self.also_allowed)
            unknown_field_errors(data.keys(), allowed, ignored=self.ignored_fields | read_only)
        return super().to_internal_value(data)  # type: ignore[misc]


class GenerationRequestSerializer(RejectUnknownFields, serializers.Serializer[None]):
    ignored_fields = RECORD_ONLY_FIELDS
    also_allowed = ("webhook", "webhook_events_filter")

    prompt = serializers.CharField(max_length=2000, help_text="What you want to see.")
    negative_prompt = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    image = serializers.CharField(required=False, allow_blank=True, default="",
                                  help_text="Guide image: a data URI, or a URL of a file of this workspace. "
                                            "Multipart uploads use the same field.")
    strength = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.6,
                                      help_text="How far to move away from the guide image (0 keeps it, 1 ignores it).")
    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                  help_text="Catalog model id; the workspace default when empty.")
    loras = LorasField(required=False, default=list)
    detailers = DetailersField(required=False, default=dict)
    aspect_ratio = serializers.ChoiceField(choices=list(ASPECT_RATIOS), required=False, allow_null=True, default=None)
    width = serializers.IntegerField(min_value=64, max_value=2048, required=False, allow_null=True, default=None)
    height = serializers.IntegerField(min_value=64, max_value=2048, required=False, allow_null=True, default=None)
    num_outputs = serializers.IntegerField(min_value=1, max_value=4, default=1)
    seed = serializers.IntegerField(min_value=0, max_value=2**32 - 1, required=False, allow_null=True, default=None)
    steps = serializers.IntegerField(min_value=1, max_value=150, required=False, allow_null=True, default=None)
    guidance = serializers.FloatField(min_value=0.0, max_value=30.0, required=False, allow_null=True, default=None)
    scheduler = serializers.ChoiceField(choices=SCHEDULERS, default="default")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs.get("width") is None) != (attrs.get("height") is None):
            raise serializers.ValidationError({"width": "Give both width and height, or neither (then "
                                                        "aspect_ratio picks the size)."})
        for side in ("width", "height"):
            if attrs.get(side) is not None and attrs[side] % 8:
                raise serializers.ValidationError({side: f"{side} must be a multiple of 8; "
                                                         f"try {attrs[side] // 8 * 8}."})
        if attrs.get("width") and attrs.get("aspect_ratio"):
            raise serializers.ValidationError({"aspect_ratio": "Give aspect_ratio or width/height, not both."})
        if attrs["detailers"].get("controlnet") and not attrs.get("image"):
            raise serializers.ValidationError({"detailers": "controlnet follows the guide image; add an image."})
        return attrs


def unknown_field_errors(given: Any, allowed: list[str], *, ignored: frozenset[str] = frozenset(),
                         hint: str = "") -> None:
    """Raise a 400 with one entry per unknown field: what it is, a close match, and the allowed names."""
    errors = {}
    for name in sorted(set(map(str, given)) - set(allowed) - ignored):
        close = difflib.get_close_matches(name, allowed, n=1)
        errors[name] = [f"Unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                        + f"; the allowed fields are {', '.join(allowed)}.{hint}"]
    if errors:
        raise serializers.ValidationError(errors)


def size_for(aspect_ratio: str | None, base: int) -> tuple[int, int]:
    """A width/height near base² pixels with the given ratio, multiples of 8 (64 for big models)."""
    w_ratio, h_ratio = ASPECT_RATIOS[aspect_ratio or "1:1"]
    area = base * base
    unit = 64 if base >= 512 else 8
    width = (area * w_ratio / h_ratio) ** 0.5
    height = width * h_ratio / w_ratio
    return max(unit, round(width / unit) * unit), max(unit, round(height / unit) * unit)
