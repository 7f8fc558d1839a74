"""Workspace webhook endpoints, the signing secret, and the delivery log."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView, WorkspaceScopedViewSet

from .. import webhooks
from ..models import WebhookDelivery, WebhookEndpoint
from ..request_schema import RejectUnknownFields


class EndpointSerializer(RejectUnknownFields, serializers.ModelSerializer[WebhookEndpoint]):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "description", "enabled", "disabled_reason", "created_at"]
        read_only_fields = ["id", "enabled", "disabled_reason", "created_at"]


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "url", "status", "attempts", "last_status_code", "last_error", "generation",
                  "endpoint", "created_at", "delivered_at", "payload"]


class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Endpoints that receive every job event of the workspace (or the events they list)."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = EndpointSerializer
    scope_map = {"POST": "admin", "DELETE": "admin"}

    def get_object(self) -> WebhookEndpoint:
        return webhooks.get_endpoint_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = EndpointSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhooks.endpoint_create(workspace=self.workspace, url=data.validated_data["url"],
                                            events=data.validated_data.get("events"),
                                            description=data.validated_data.get("description", ""))
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        webhooks.endpoint_delete(endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """The delivery log: every message, its attempts and the receiver's last answer."""

    queryset = WebhookDelivery.objects.all()
    serializer_class = DeliverySerializer

    def filter_for_request(self, queryset: Any) -> Any:
        params = self.request.query_params
        if generation := params.get("generation"):
            queryset = queryset.filter(generation_id=generation)
        if status_ := params.get("status"):
            queryset = queryset.filter(status=status_)
        return queryset


class WebhookSecretView(WorkspaceAPIView):
    """The `whsec_…` secret deliveries are signed with (admin only); POST rotates it."""

    scope_map = {"GET": "admin", "POST": "admin"}

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        return Response({"secret": webhooks.workspace_secret(self.workspace)})

    @extend_schema(request=None, responses=dict)
    def post(self, request: Request) -> Response:
        return Response({"secret": webhooks.rotate_secret(self.workspace)})
