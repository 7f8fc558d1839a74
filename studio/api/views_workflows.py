"""`/api/v1/workflows`: submit a node graph directly; `/api/v1/nodes`: what graphs may contain."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView, WorkspaceScopedViewSet

from .. import selectors, services
from ..engine import node_registry
from ..models import Generation, Source
from ..request_schema import RejectUnknownFields
from ..serializers_output import generation_payload
from .workflow_inputs import bring_in_images


class WorkflowInputSerializer(RejectUnknownFields, serializers.Serializer[None]):
    graph = serializers.DictField(help_text='{"nodes": {...}, "outputs": [...]} as in the node engine docs.')
    webhook = serializers.URLField(required=False, allow_blank=True, default="")
    webhook_events_filter = serializers.ListField(child=serializers.CharField(), required=False)


def _workflow_payload(generation: Generation, request: Request) -> dict[str, Any]:
    body = generation_payload(generation, request)
    body["graph"] = generation.graph
    body["urls"].update(get=request.build_absolute_uri(f"/api/v1/workflows/{generation.pk}"),
                        cancel=request.build_absolute_uri(f"/api/v1/workflows/{generation.pk}/cancel"))
    return body


PREFER = OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, required=False,
                          description="`wait` or `wait=N`: hold the response until the job ends (≤ 60 s).")
IDEMPOTENCY = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                               description="Resubmitting with the same key returns the first job.")


class WorkflowViewSet(mixins.ListModelMixin, WorkspaceScopedViewSet):
    queryset = Generation.objects.all()
    serializer_class = WorkflowInputSerializer
    scope_map = {"POST": "generate"}
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def filter_for_request(self, queryset: Any) -> Any:
        return selectors.filter_generations(queryset.filter(source=Source.WORKFLOW), self.request.query_params)

    @extend_schema(request=WorkflowInputSerializer, parameters=[PREFER, IDEMPOTENCY], responses={201: dict})
    def create(self, request: Request) -> Response:
        data = WorkflowInputSerializer(data=request.data if "graph" in request.data else {"graph": request.data})
        data.is_valid(raise_exception=True)
        graph, image_problems = bring_in_images(data.validated_data["graph"], workspace=self.workspace)
        try:
            if image_problems:  # report them with every other problem of the graph, in one answer
                seen = {(p["node"], p["port"]) for p in image_problems}
                others = [p for p in services.graph_problems(graph=graph, auth=self.workspace_auth)
                          if (p["node"], p["port"]) not in seen]
                raise services.GraphInvalid(image_problems + others)
            submitted = services.generation_submit(
                auth=self.workspace_auth, graph=graph, source=Source.WORKFLOW,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
                webhook=data.validated_data.get("webhook", ""),
                webhook_events_filter=data.validated_data.get("webhook_events_filter"),
            )
        except services.GraphInvalid as exc:
            return Response({"detail": f"The graph has {len(exc.errors)} problem(s); see errors.",
                             "code": "invalid_graph", "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        generation = submitted.generation
        if (wait := selectors.prefer_wait_seconds(request.headers.get("Prefer"))) is not None:
            generation = selectors.wait_until_terminal(generation, wait)
        return Response(_workflow_payload(generation, request),
                        status=status.HTTP_201_CREATED if submitted.created else status.HTTP_200_OK)

    @extend_schema(operation_id="workflows_list", responses=dict)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([_workflow_payload(g, request) for g in page or []])

    @extend_schema(operation_id="workflows_retrieve", responses=dict)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(_workflow_payload(self.get_object(), request))

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        generation = services.generation_cancel(generation=self.get_object())
        return Response(_workflow_payload(generation, request))

    def get_object(self) -> Generation:
        from ..access import get_generation_for_workspace

        return get_generation_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])


class NodeListView(WorkspaceAPIView):
    """Every loaded node type with the JSON Schema of its inputs and outputs."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response({"nodes": node_registry().describe()})
