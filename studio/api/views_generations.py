"""`/api/v1/generations`: prompt in, images out; the studio page uses the same endpoints."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceScopedViewSet
from accounts.api.parsers import JsonObjectParser

from .. import selectors, services
from ..access import get_generation_for_workspace
from ..models import Generation, Source
from ..request_schema import GenerationRequestSerializer
from ..serializers_output import generation_payload
from .views_workflows import IDEMPOTENCY, PREFER

LIST_FILTERS = [
    OpenApiParameter(name, str, OpenApiParameter.QUERY, required=False, description=text)
    for name, text in [
        ("status", "Comma-separated statuses."), ("model", "Catalog model id."), ("lora", "Catalog LoRA id."),
        ("source", "studio, workflow, replicate or openai."), ("created_after", "YYYY-MM-DD"),
        ("created_before", "YYYY-MM-DD"), ("q", "Text in the prompt."),
    ]
]


class GenerationViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    queryset = Generation.objects.all()
    serializer_class = GenerationRequestSerializer
    scope_map = {"POST": "generate"}
    parser_classes = [JsonObjectParser, MultiPartParser, FormParser]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def filter_for_request(self, queryset: Any) -> Any:
        return selectors.filter_generations(queryset, self.request.query_params)

    def get_object(self) -> Generation:
        return get_generation_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])

    @extend_schema(request=GenerationRequestSerializer, parameters=[PREFER, IDEMPOTENCY], responses={201: dict})
    def create(self, request: Request) -> Response:
        data = request.data.dict() if hasattr(request.data, "dict") else dict(request.data)
        webhook = str(data.pop("webhook", "") or "")
        events_filter = data.pop("webhook_events_filter", None)
        if isinstance(events_filter, str):
            events_filter = [e.strip() for e in events_filter.split(",") if e.strip()]
        submitted = services.generation_request_submit(
            auth=self.workspace_auth, data=data, image_upload=request.FILES.get("image"), source=Source.STUDIO,
            idempotency_key=request.headers.get("Idempotency-Key", ""), webhook=webhook,
            webhook_events_filter=events_filter,
        )
        generation = submitted.generation
        if (wait := selectors.prefer_wait_seconds(request.headers.get("Prefer"))) is not None:
            generation = selectors.wait_until_terminal(generation, wait)
        return Response(generation_payload(generation, request),
                        status=status.HTTP_201_CREATED if submitted.created else status.HTTP_200_OK)

    @extend_schema(operation_id="generations_list", parameters=LIST_FILTERS, responses=dict)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([generation_payload(g, request) for g in page or []])

    @extend_schema(operation_id="generations_retrieve", responses=dict)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(generation_payload(self.get_object(), request))

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return Response(generation_payload(services.generation_cancel(generation=self.get_object()), request))
