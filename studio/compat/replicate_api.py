"""Replicate-compatible predictions (`/v1/predictions`, `/v1/models/<owner>/<name>/predictions`).

Thin adapters: they translate Replicate's request/response shapes and call the same generation
service as the native API, so the official `replicate` client works against Kizy unchanged.
A model is addressed as `<owner>/<name>` where `<name>` is a catalog model id (the owner is free,
`kizy` by convention), or as a version id equal to the catalog id.
"""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.http import Http404, HttpRequest
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView
from accounts.api.parsers import JsonObjectParser
from gpu_workers.artifacts import InvalidArtifactKey, artifact_key
from kizy_site.storage import absolute, signed_url

from .. import selectors, services
from ..access import get_generation_for_workspace
from ..engine import StorageArtifactStore
from ..guide_images import MAX_BYTES, clean_image_bytes
from ..models import Generation, Source
from ..request_schema import RECORD_ONLY_FIELDS, GenerationRequestSerializer, unknown_field_errors
from ..serializers_output import output_files

# Replicate's usual input names → Kizy's. Anything else that is not a Kizy field is a 400.
INPUT_ALIASES = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "prompt_strength": "strength",
    "input_image": "image",
}
FILE_LINK_SECONDS = 24 * 3600  # how long `urls.get` of an uploaded file works (Replicate keeps files a day)


def prediction_payload(generation: Generation, request: HttpRequest | None) -> dict[str, Any]:
    """Replicate's prediction object: the API's answer and, for predictions made here, the webhook body
    (links are absolute: the request's host, or KIZY_SITE_URL when there is no request)."""
    files = [f["url"] for f in output_files(generation, request)] if generation.status == "succeeded" else None
    model = generation.request.get("model") or generation.model_ref
    get = absolute(request, f"/v1/predictions/{generation.pk}")
    return {
        "id": str(generation.pk),
        "model": f"kizy/{model}",
        "version": model,
        "input": generation.request,
        "logs": generation.logs or "",
        "output": files,
        "data_removed": False,
        "error": generation.error or None,
        "status": generation.status,
        "created_at": generation.created_at.isoformat() if generation.created_at else None,
        "started_at": generation.started_at.isoformat() if generation.started_at else None,
        "completed_at": generation.completed_at.isoformat() if generation.completed_at else None,
        "urls": {"get": get, "cancel": f"{get}/cancel",
                 "stream": absolute(request, f"/ws/generations/{generation.pk}/").replace("http", "ws", 1),
                 "web": absolute(request, f"/gallery/{generation.pk}")},
        "metrics": {"predict_time": generation.predict_seconds, "progress": generation.progress},
        "webhook": generation.webhook or None,
        "webhook_events_filter": generation.webhook_events_filter or None,
    }


def translate_input(raw: Any) -> dict[str, Any]:
    """Replicate's `input` in Kizy's names; a 400 naming any field that is neither."""
    if raw in (None, ""):
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError({"input": "input must be an object such as {\"prompt\": \"a red fox\"}."})
    allowed = list(GenerationRequestSerializer().fields)
    unknown_field_errors(
        [name for name in raw if name not in INPUT_ALIASES], allowed, ignored=RECORD_ONLY_FIELDS,
        hint=f" Replicate's names {', '.join(INPUT_ALIASES)} are accepted too.",
    )
    translated: dict[str, Any] = {}
    for name, value in raw.items():
        ours = INPUT_ALIASES.get(name, name)
        if ours in translated:
            raise ValidationError({name: f"Give {name} or {ours}, not both."})
        translated[ours] = value
    return translated


class _PredictionCreate(WorkspaceAPIView):
    scope_map = {"POST": "generate"}

    def _create(self, request: Request, model: str | None) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        unknown_field_errors(body.keys(), ["version", "input", "webhook", "webhook_completed",
                                           "webhook_events_filter", "stream"])
        webhook, events_filter = str(body.get("webhook") or ""), body.get("webhook_events_filter")
        if body.get("webhook_completed") and not webhook:  # Replicate's older spelling
            webhook, events_filter = str(body["webhook_completed"]), ["completed"]
        model = model or str(body.get("version") or "")
        if ":" in model:  # owner/name:version → the version names the catalog model
            model = model.split(":", 1)[1]
        request_input = translate_input(body.get("input"))
        if model:
            request_input["model"] = model
        submitted = services.generation_request_submit(
            auth=self.workspace_auth, data=request_input, source=Source.REPLICATE,
            idempotency_key=request.headers.get("Idempotency-Key", ""), webhook=webhook,
            webhook_events_filter=events_filter,
        )
        generation = submitted.generation
        if (wait := selectors.prefer_wait_seconds(request.headers.get("Prefer"))) is not None:
            generation = selectors.wait_until_terminal(generation, wait)
        return Response(prediction_payload(generation, request),
                        status=status.HTTP_201_CREATED if submitted.created else status.HTTP_200_OK)


class PredictionsView(_PredictionCreate):
    @extend_schema(request=dict, responses={201: dict})
    def post(self, request: Request) -> Response:
        return self._create(request, None)

    @extend_schema(operation_id="replicate_predictions_list", responses=dict)
    def get(self, request: Request) -> Response:
        queryset = Generation.objects.filter(workspace=self.workspace).order_by("-created_at")
        raw_cursor = request.query_params.get("cursor") or "0"
        if not raw_cursor.isdigit():
            raise ValidationError({"cursor": "cursor must be a number: use the `next` or `previous` link of a "
                                             "page as it is."})
        cursor = int(raw_cursor)
        page = list(queryset[cursor:cursor + 50])
        has_next = queryset[cursor + 50:cursor + 51].exists()
        base = request.build_absolute_uri("/v1/predictions")
        return Response({
            "previous": f"{base}?cursor={max(cursor - 50, 0)}" if cursor else None,
            "next": f"{base}?cursor={cursor + 50}" if has_next else None,
            "results": [prediction_payload(g, request) for g in page],
        })


class ModelPredictionsView(_PredictionCreate):
    @extend_schema(request=dict, responses={201: dict})
    def post(self, request: Request, owner: str, name: str) -> Response:
        return self._create(request, name)


class PredictionDetailView(WorkspaceAPIView):
    @extend_schema(operation_id="replicate_predictions_retrieve", responses=dict)
    def get(self, request: Request, prediction_id: str) -> Response:
        generation = get_generation_for_workspace(workspace=self.workspace, id=prediction_id)
        return Response(prediction_payload(generation, request))


class PredictionCancelView(WorkspaceAPIView):
    scope_map = {"POST": "generate"}

    @extend_schema(request=None, responses=dict)
    def post(self, request: Request, prediction_id: str) -> Response:
        generation = get_generation_for_workspace(workspace=self.workspace, id=prediction_id)
        return Response(prediction_payload(services.generation_cancel(generation=generation), request))


# --- files (`client.files.create`, used by the replicate client for every file input) ---------------

def _file_payload(request: Request, workspace_id: str, sha: str, size: int, metadata: dict[str, Any] | None,
                  name: str, created_at: Any) -> dict[str, Any]:
    key = artifact_key(workspace_id, sha, "png")
    expires = timezone.now() + timedelta(seconds=FILE_LINK_SECONDS)
    return {
        "id": sha,
        "name": name,
        "content_type": "image/png",
        "size": size,
        "etag": sha,
        "checksums": {"sha256": sha},
        "metadata": metadata or {},
        "created_at": created_at.isoformat() if created_at else None,
        "expires_at": expires.isoformat(),
        "urls": {"get": absolute(request, signed_url(key, ttl=FILE_LINK_SECONDS))},
    }


class FilesView(WorkspaceAPIView):
    """`POST /v1/files`: an image for a later prediction's input. It is verified and stored as PNG
    without metadata (like every guide image), content-addressed in the workspace, and its `urls.get`
    is a signed link to this workspace's file, which prediction inputs accept."""

    scope_map = {"POST": "generate"}
    parser_classes = [MultiPartParser, FormParser, JsonObjectParser]

    @extend_schema(operation_id="replicate_files_create", request=dict, responses={201: dict})
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("content") or request.FILES.get("file")
        if upload is None:
            raise ValidationError({"content": "Upload the file as multipart/form-data in the 'content' field."})
        metadata: Any = request.data.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError as exc:
                raise ValidationError({"metadata": "metadata must be a JSON object."}) from exc
        if not isinstance(metadata, dict):
            raise ValidationError({"metadata": "metadata must be a JSON object."})
        try:
            png, _, _ = clean_image_bytes(upload.read(MAX_BYTES + 1))  # one byte over: refused as too large
        except ValidationError as exc:
            message = exc.detail.get("image") if isinstance(exc.detail, dict) else exc.detail
            raise ValidationError({"content": message}) from exc
        sha = hashlib.sha256(png).hexdigest()
        StorageArtifactStore().put(artifact_key(str(self.workspace.pk), sha, "png"), png, "image/png")
        payload = _file_payload(request, str(self.workspace.pk), sha, len(png), metadata, upload.name or "file",
                                timezone.now())
        return Response(payload, status=status.HTTP_201_CREATED)


class FileDetailView(WorkspaceAPIView):
    @extend_schema(operation_id="replicate_files_retrieve", responses=dict)
    def get(self, request: Request, file_id: str) -> Response:
        from django.core.files.storage import default_storage

        try:
            key = artifact_key(str(self.workspace.pk), file_id, "png")
        except InvalidArtifactKey as exc:
            raise Http404("No such file in this workspace.") from exc
        if not StorageArtifactStore().exists(key):
            raise Http404("No such file in this workspace.")
        try:
            created = default_storage.get_created_time(key)
        except (NotImplementedError, OSError):
            created = None
        return Response(_file_payload(request, str(self.workspace.pk), file_id, default_storage.size(key), None,
                                      f"{file_id}.png", created))
