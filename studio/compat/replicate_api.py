"""Replicate-compatible predictions (`/v1/predictions`, `/v1/models/<owner>/<name>/predictions`).

Thin adapters: they translate Replicate's request/response shapes and call the same generation
service as the native API, so the official `replicate` client works against Kizy unchanged.
A model is addressed as `<owner>/<name>` where `<name>` is a catalog model id (the owner is free,
`kizy` by convention), or as a version id equal to the catalog id.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView

from .. import selectors, services
from ..access import get_generation_for_workspace
from ..models import Generation, Source
from ..serializers_output import output_files


def prediction_payload(generation: Generation, request: Request) -> dict[str, Any]:
    files = [f["url"] for f in output_files(generation, request)] if generation.status == "succeeded" else None
    base = request.build_absolute_uri("/v1/predictions/")
    model = generation.request.get("model") or generation.model_ref
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
        "urls": {"get": f"{base}{generation.pk}", "cancel": f"{base}{generation.pk}/cancel",
                 "stream": request.build_absolute_uri(f"/ws/generations/{generation.pk}/").replace("http", "ws", 1),
                 "web": request.build_absolute_uri(f"/gallery/{generation.pk}")},
        "metrics": {"predict_time": generation.predict_seconds, "progress": generation.progress},
        "webhook": generation.webhook or None,
        "webhook_events_filter": generation.webhook_events_filter or None,
    }


class _PredictionCreate(WorkspaceAPIView):
    scope_map = {"POST": "generate"}

    def _create(self, request: Request, model: str | None) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        model = model or str(body.get("version") or "")
        if ":" in model:  # owner/name:version → the version names the catalog model
            model = model.split(":", 1)[1]
        request_input = dict(body.get("input") or {})
        if model:
            request_input["model"] = model
        submitted = services.generation_request_submit(
            auth=self.workspace_auth, data=request_input, source=Source.REPLICATE,
            idempotency_key=request.headers.get("Idempotency-Key", ""), webhook=str(body.get("webhook") or ""),
            webhook_events_filter=body.get("webhook_events_filter"),
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
        cursor = int(request.query_params.get("cursor") or 0)
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
