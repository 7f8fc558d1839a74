from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..models import ApiKey
from .base import WorkspaceAPIView, WorkspaceScopedViewSet
from .serializers import ApiKeyCreatedSerializer, ApiKeyCreateInputSerializer, ApiKeyOutputSerializer, MeSerializer


class MeView(WorkspaceAPIView):
    """Who is calling: the user, the workspace and what this credential may do."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        auth = self.workspace_auth
        key = auth.api_key
        return Response(
            {
                "user": {"id": auth.user.pk, "email": auth.user.email, "name": auth.user.name} if auth.user else None,
                "workspace": {"id": str(auth.workspace.pk), "name": auth.workspace.name},
                "role": auth.membership.role if auth.membership else None,
                "scopes": sorted(auth.scopes),
                "api_key": {"id": str(key.id), "name": key.name, "prefix": key.prefix} if key else None,
            }
        )


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """The workspace's API keys. Listing needs `read`; creating and revoking need `admin`."""

    queryset = ApiKey.objects.select_related("created_by")
    serializer_class = ApiKeyOutputSerializer
    scope_map = {"POST": "admin", "DELETE": "admin"}

    @extend_schema(request=ApiKeyCreateInputSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ApiKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.api_key_create(
            workspace=self.workspace, created_by=self.workspace_auth.user, name=data.validated_data["name"],
            scopes=data.validated_data["scopes"], allowed_scopes=self.workspace_auth.scopes,
        )
        body = ApiKeyOutputSerializer(created.api_key).data
        body["key"] = created.secret
        # The only response that carries the secret: no cache (browser, proxy) may keep a copy.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(responses=ApiKeyOutputSerializer)
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke (the row stays, so its history remains visible)."""
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(ApiKeyOutputSerializer(api_key).data)
