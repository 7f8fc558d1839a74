"""Catalog API: browse models, LoRAs and intents; import private LoRAs; ask for an automatic setup.

Every view is a WorkspaceAPIView: the workspace comes from the API key or the session, and rows are
fetched only through `access.py` (public curated entries plus this workspace's own).
Scopes: reading (including POST /suggest, which changes nothing) needs `read`; importing a LoRA and
installing a visible entry need `generate`, like starting a generation, so members can bring their own
LoRAs and install public ones, and viewers cannot.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceAPIView

from .. import access, selectors
from ..downloads import DownloadRefused
from ..models import BaseModel, Intent, LoraAdapter
from ..services import imports
from ..services import install as install_service
from ..suggest.engine import suggest
from .serializers import (
    CompatibilityOutputSerializer,
    InstallOutputSerializer,
    IntentOutputSerializer,
    LoraImportInputSerializer,
    LoraImportOutputSerializer,
    LoraOutputSerializer,
    ModelOutputSerializer,
    SuggestInputSerializer,
    SuggestOutputSerializer,
)

LIST_FILTERS = [
    OpenApiParameter("q", str, description="Search name, description, tags, creator (and trigger words)."),
    OpenApiParameter("family", str, description="sd15, sdxl, flux, video, unknown (comma-separated)."),
    OpenApiParameter("source", str, description="civitai, huggingface, local, upload, trained."),
    OpenApiParameter("tag", str, description="Tag name(s), comma-separated; all must match."),
    OpenApiParameter("status", str, description="Default: everything but withdrawn."),
    OpenApiParameter("visibility", str, description="public or private (this workspace's own)."),
    OpenApiParameter("featured", bool),
    OpenApiParameter("installed", bool),
    OpenApiParameter(
        "intent",
        str,
        description="Intent slug(s): LoRAs linked to it; base models of the family it suggests.",
    ),
]


class CatalogViewSet(
    WorkspaceAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Catalog listing and installs; visibility is decided by access.py, never here."""

    scope_map = {"POST": "generate"}

    def params(self) -> dict[str, str]:
        params = {key: value for key, value in self.request.query_params.items() if value}
        if params.get("intent") and (unknown := selectors.unknown_intents(params["intent"])):
            raise ValidationError(
                {"intent": f"Unknown intent {', '.join(unknown)}; GET /api/v1/intents lists the slugs."}
            )
        return params

    @extend_schema(request=None, responses={200: InstallOutputSerializer, 202: InstallOutputSerializer})
    @action(detail=True, methods=["post"])
    def install(self, request: Request, pk: str) -> Response:
        """Download this entry into the model store (needs `generate`); poll the detail's `install`.

        202 while it downloads (a second call returns the same install), 200 once it is installed.
        """
        entry = self.get_object()
        try:
            download, queued = install_service.entry_install(
                entry=entry, workspace=self.workspace, user=self.workspace_auth.user
            )
        except DownloadRefused as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        entry.refresh_from_db(fields=["status", "store_ref"])
        body = InstallOutputSerializer(
            {
                "id": entry.pk,
                "status": entry.status,
                "ready": access.store_ref_of(entry) is not None,
                "queued": queued,
                "install": download,
            }
        ).data
        return Response(body, status=status.HTTP_202_ACCEPTED if queued else status.HTTP_200_OK)


@extend_schema(parameters=LIST_FILTERS)
class ModelViewSet(CatalogViewSet):
    """Base models this workspace may generate with."""

    serializer_class = ModelOutputSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no workspace
            return BaseModel.objects.none()
        return selectors.model_list(workspace=self.workspace, params=self.params())

    def get_object(self) -> Any:
        return access.get_model_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])


class LoraViewSet(CatalogViewSet):
    """LoRA adapters: the public curated catalog plus this workspace's private imports and trainings."""

    serializer_class = LoraOutputSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return LoraAdapter.objects.none()
        return selectors.lora_list(workspace=self.workspace, params=self.params())

    def get_object(self) -> Any:
        return access.get_lora_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])

    @extend_schema(parameters=LIST_FILTERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=LoraImportInputSerializer,
        responses={201: LoraImportOutputSerializer, 202: LoraImportOutputSerializer},
    )
    @action(detail=False, methods=["post"], url_path="import")
    def import_lora(self, request: Request) -> Response:
        """Import a private LoRA by CivitAI link, Hugging Face repo id or file upload (needs `generate`).

        Links and repos answer 202: the file downloads in the background (poll `install`). Uploads are
        checked at once and answer 201.
        """
        data = LoraImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        common = {"workspace": self.workspace, "user": self.workspace_auth.user}
        if values.get("civitai_url"):
            result = imports.lora_import_from_civitai(**common, url=values["civitai_url"])
        elif values.get("huggingface_repo"):
            result = imports.lora_import_from_huggingface(**common, repo_id=values["huggingface_repo"])
        else:
            result = imports.lora_import_upload(
                **common,
                upload=values["file"],
                name=values.get("name", ""),
                family=values.get("family", ""),
                trigger_words=values.get("trigger_words"),
                tags=values.get("tags"),
            )
        body = LoraImportOutputSerializer(
            {"lora": result.lora, "download": result.download, "created": result.created},
            context=self.get_serializer_context(),
        ).data
        return Response(body, status=status.HTTP_202_ACCEPTED if result.download else status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("model", str, required=True, description="Base model id.")],
        responses=CompatibilityOutputSerializer,
    )
    @action(detail=True, methods=["get"])
    def compatibility(self, request: Request, pk: str) -> Response:
        """Will this LoRA load on that model? Families first, then layer shapes if both are here."""
        lora = self.get_object()
        if not request.query_params.get("model"):
            raise ValidationError({"model": "Give the base model to check against: ?model=<model id>."})
        model = access.get_model_for_workspace(workspace=self.workspace, id=request.query_params["model"])
        result = selectors.lora_compatibility(lora=lora, model=model)
        return Response(CompatibilityOutputSerializer(result).data)


class IntentViewSet(
    WorkspaceAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Generation intents with example prompts: what Auto can recognise."""

    serializer_class = IntentOutputSerializer
    queryset = Intent.objects.filter(is_active=True).order_by("position", "slug")
    lookup_field = "slug"
    pagination_class = None


class SuggestView(WorkspaceAPIView):
    """Auto-pick: ranked intents, a base model, LoRAs with weights and detailers, each with a reason."""

    scope_map = {"POST": "read"}

    @extend_schema(request=SuggestInputSerializer, responses={200: SuggestOutputSerializer})
    def post(self, request: Request) -> Response:
        data = SuggestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = data.validated_data.get("model")
        return Response(
            suggest(
                workspace=self.workspace,
                prompt=data.validated_data["prompt"],
                model_id=str(model) if model else None,
            )
        )
