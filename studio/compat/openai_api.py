"""OpenAI-compatible images (`/v1/images/generations`, `/v1/images/edits`): the official `openai`
client pointed at Kizy gets images. Requests map onto the same generation service; the call
waits for the job (OpenAI's API is synchronous)."""
from __future__ import annotations

import base64
import re
import time
from typing import Any

from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView
from accounts.api.parsers import JsonObjectParser

from .. import selectors, services
from ..models import Generation, Source
from ..request_schema import unknown_field_errors
from ..serializers_output import output_files

OPENAI_WAIT_SECONDS = 600
_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


def _openai_error(message: str, param: str | None, code: int) -> Response:
    return Response({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}},
                    status=code)


# OpenAI's own model names: most snippets send one. They mean "the workspace's default model".
OPENAI_MODEL_NAMES = frozenset({"dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini"})
GENERATION_FIELDS = ["prompt", "model", "n", "size", "response_format", "quality", "user"]
EDIT_FIELDS = [*GENERATION_FIELDS, "image", "image[]", "mask", "strength"]


def _translate(data: Any, *, edit: bool) -> dict[str, Any]:
    allowed = EDIT_FIELDS if edit else GENERATION_FIELDS
    unknown_field_errors(data.keys(), allowed)
    if edit and data.get("mask") not in (None, ""):
        raise ValidationError({"mask": "Masked edits are not supported: Kizy redraws the whole image, guided by "
                                       "it (strength 0-1 says how far). Leave out mask."})
    if data.get("quality") not in (None, "", "auto", "standard"):
        raise ValidationError({"quality": "Only quality 'auto' or 'standard' is offered; leave quality out."})
    request: dict[str, Any] = {"prompt": data.get("prompt", "")}
    if (model := data.get("model")) and model not in OPENAI_MODEL_NAMES:
        request["model"] = model
    if (n := data.get("n")) not in (None, ""):
        request["num_outputs"] = n
    size = data.get("size") or ""
    if size and size != "auto":
        match = _SIZE.match(str(size))
        if not match:
            raise ValidationError({"size": "size must look like 1024x1024."})
        request["width"], request["height"] = int(match.group(1)), int(match.group(2))
    if edit:
        request["strength"] = data.get("strength", 0.75)
    return request


class _ImagesView(WorkspaceAPIView):
    scope_map = {"POST": "generate"}
    parser_classes = [JsonObjectParser, MultiPartParser, FormParser]
    edit = False

    @extend_schema(request=dict, responses=dict)
    def post(self, request: Request) -> Response:
        response_format = request.data.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            return _openai_error("response_format must be 'url' or 'b64_json'.", "response_format", 400)
        image = (request.FILES.get("image") or request.FILES.get("image[]")) if self.edit else None
        if self.edit and image is None:
            return _openai_error("Upload the image to edit in the 'image' field.", "image", 400)
        try:
            data = _translate(request.data, edit=self.edit)
            submitted = services.generation_request_submit(
                auth=self.workspace_auth, data=data, image_upload=image, source=Source.OPENAI,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
            )
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"prompt": exc.detail}
            field, messages = next(iter(detail.items()))
            return _openai_error(f"{field}: {messages[0] if isinstance(messages, list) else messages}", field, 400)
        generation = selectors.wait_until_terminal(submitted.generation, OPENAI_WAIT_SECONDS, poll=0.05)
        if generation.status != "succeeded":
            message = generation.error or f"The generation ended as {generation.status}."
            return _openai_error(message, None, status.HTTP_500_INTERNAL_SERVER_ERROR
                                 if generation.status == "failed" else status.HTTP_408_REQUEST_TIMEOUT)
        return Response({"created": int(time.time()), "data": self._items(generation, request, response_format)})

    def _items(self, generation: Generation, request: Request, response_format: str) -> list[dict[str, Any]]:
        prompt = generation.request.get("prompt", "")
        if response_format == "url":
            return [{"url": f["url"], "revised_prompt": prompt} for f in output_files(generation, request)]
        items = []
        for output in generation.outputs:
            with default_storage.open(output["key"], "rb") as handle:
                items.append({"b64_json": base64.b64encode(handle.read()).decode(), "revised_prompt": prompt})
        return items


class ImageGenerationsView(_ImagesView):
    edit = False


class ImageEditsView(_ImagesView):
    edit = True
