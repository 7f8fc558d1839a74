"""The only way to fetch a generation: by workspace; another workspace's id is a 404."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Workspace

from .models import Generation


def get_generation_for_workspace(*, workspace: Workspace, id: object) -> Generation:
    try:
        return Generation.objects.get(workspace=workspace, id=id)
    except (Generation.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such generation in this workspace.") from exc


def generations_for_workspace(*, workspace: Workspace) -> QuerySet[Generation]:
    """Every generation of the workspace (lists, gallery); filter further with selectors."""
    return Generation.objects.filter(workspace=workspace)
