"""The workspace-scoped base for every API view: tenancy is enforced here and nowhere else.

Subclasses set `queryset` (or `model`) and `scope_map`; `get_queryset()` always filters by the
request's workspace, so a row of another workspace can only ever answer 404.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import generics, viewsets
from rest_framework.views import APIView

from ..models import Workspace
from ..workspace_auth import WorkspaceAuth


class WorkspaceAPIView(APIView):
    """An API view whose request always belongs to one workspace (key's or session's)."""

    scope_map: dict[str, str] = {}

    @property
    def workspace_auth(self) -> WorkspaceAuth:
        auth = self.request.auth
        assert isinstance(auth, WorkspaceAuth), "HasWorkspaceScope guarantees this"
        return auth

    @property
    def workspace(self) -> Workspace:
        return self.workspace_auth.workspace


class WorkspaceScopedMixin:
    """Filters querysets by workspace. Extra filtering goes in `filter_for_request`, never around it."""

    workspace_field = "workspace"
    queryset: QuerySet[Any] | None = None

    def filter_for_request(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset

    def get_queryset(self) -> QuerySet[Any]:
        assert self.queryset is not None, f"{type(self).__name__} must set queryset"
        workspace = self.workspace  # type: ignore[attr-defined]
        return self.filter_for_request(self.queryset.all().filter(**{self.workspace_field: workspace}))


class WorkspaceScopedGenericView(WorkspaceScopedMixin, WorkspaceAPIView, generics.GenericAPIView):  # type: ignore[misc]
    pass


class WorkspaceScopedViewSet(WorkspaceScopedMixin, WorkspaceAPIView, viewsets.GenericViewSet):  # type: ignore[misc]
    pass


def owned_by(row: Model, workspace: Workspace, field: str = "workspace_id") -> bool:
    return getattr(row, field) == workspace.pk
