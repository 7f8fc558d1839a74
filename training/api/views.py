"""`/api/v1/datasets` and `/api/v1/trainings`: upload images, edit the goal and captions, see the checks,
train a LoRA, follow it, cancel it. Writes need the `train` scope; reads need `read`."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import TooManyFilesSent
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import WorkspaceScopedViewSet
from accounts.api.parsers import JsonObjectParser
from gpu_workers.training.presets import PARAM_BY_NAME, PRESETS, ParamError, describe_presets, resolve_params

from .. import access, services
from ..catalog import default_trainable_model, trainable_model, trainable_models
from ..models import Dataset, GoalType, TrainingJob
from ..payloads import dataset_payload, training_payload
from ..plan import training_plan, wants_quick_preset
from ..selectors import dataset_checks, training_for_idempotency_key
from ..uploads import UploadRefused, too_many_files

UUID_PATTERN = "[0-9a-fA-F-]{36}"


def refused(exc: UploadRefused) -> Response:
    return Response(
        {"detail": str(exc), "code": "upload_refused", "errors": [p.as_dict() for p in exc.problems]},
        status=status.HTTP_400_BAD_REQUEST,
    )


def uploaded(request: Request) -> list[tuple[str, Any]]:
    return [(f.name, f) for f in request.FILES.getlist("images")]


def param_overrides(data: Any) -> dict[str, Any]:
    """`params` (an object, or a JSON string in multipart) plus any parameter given as its own field."""
    raw = data.get("params") if hasattr(data, "get") else None
    params: dict[str, Any] = {}
    if isinstance(raw, str) and raw.strip():
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError({"params": f"params must be a JSON object ({exc.msg})."}) from exc
    if isinstance(raw, dict):
        params.update(raw)
    elif raw not in (None, ""):
        raise ValidationError({"params": 'params must be a JSON object such as {"steps": 800}.'})
    for name in PARAM_BY_NAME:
        if name in data and name not in params:
            params[name] = data.get(name)
    return params


class GoalSerializer(serializers.Serializer[None]):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    goal_type = serializers.ChoiceField(GoalType.choices, required=False)
    trigger_word = serializers.CharField(required=False, allow_blank=True, max_length=40)


class DatasetCreateSerializer(GoalSerializer):
    images = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        help_text="PNG/JPEG/WebP images, MP4/WebM videos, or a zip of them.",
    )


class CaptionsSerializer(serializers.Serializer[None]):
    captions = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=1000),
        help_text='{"<image id>": "caption", ...}; an empty caption is regenerated.',
    )


class TrainingMetaSerializer(serializers.Serializer[None]):
    dataset = serializers.UUIDField(required=False, help_text="An existing dataset, instead of `images`.")
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Base model id (GET /api/v1/trainings/presets); default: the first one.",
    )
    webhook = serializers.URLField(required=False, allow_blank=True, default="")
    webhook_events_filter = serializers.ListField(child=serializers.CharField(), required=False)


class TrainingCreateSerializer(GoalSerializer, TrainingMetaSerializer):
    images = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        help_text="PNG/JPEG/WebP images, MP4/WebM videos, or a zip of them.",
    )
    params = serializers.JSONField(
        required=False, help_text='Overrides of the family preset, e.g. {"steps": 800}.'
    )


class RefuseTooManyFiles:
    """More loose files than Django parses surface while the request is read (in authentication's CSRF
    check, or at ``request.data``), before any view code: answer them like every other refused upload."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, TooManyFilesSent):
            return refused(too_many_files())
        return super().handle_exception(exc)  # type: ignore[misc, no-any-return]


MODEL_PARAM = OpenApiParameter("model", str, required=False, description="Base model id the checks are for.")


class DatasetViewSet(RefuseTooManyFiles, mixins.ListModelMixin, WorkspaceScopedViewSet):
    """Training images with their captions, goal and trigger word."""

    queryset = Dataset.objects.all()
    serializer_class = DatasetCreateSerializer
    scope_map = {"POST": "train", "PATCH": "train", "PUT": "train", "DELETE": "train"}
    lookup_value_regex = UUID_PATTERN
    parser_classes = [JsonObjectParser, MultiPartParser, FormParser]

    def get_object(self) -> Dataset:
        return access.get_dataset_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])

    def _checks(self, dataset: Dataset, request: Request) -> dict[str, Any] | None:
        model_id = request.query_params.get("model")
        model = (
            trainable_model(workspace=self.workspace, id=model_id)[0]
            if model_id
            else default_trainable_model(workspace=self.workspace)
        )
        family = model.family if model else request.query_params.get("family", "")
        if family not in PRESETS:
            return None
        quick = wants_quick_preset(model)
        try:
            params = resolve_params(
                family, {k: v for k, v in request.query_params.items() if k in PARAM_BY_NAME}, quick=quick
            )
        except ParamError as exc:
            raise ValidationError({"params": exc.errors}) from exc
        checks = dataset_checks(dataset=dataset, family=family, params=params)
        plan = training_plan(workspace=self.workspace, model=model, params=params, quick=quick)
        return {**checks, "params": params, "plan": plan.as_dict()}

    @extend_schema(operation_id="datasets_list", responses=dict)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset().prefetch_related("items"))
        return self.get_paginated_response([dataset_payload(d, request) for d in page or []])

    @extend_schema(request={"multipart/form-data": DatasetCreateSerializer}, responses={201: dict})
    def create(self, request: Request) -> Response:
        goal = GoalSerializer(data=request.data)
        goal.is_valid(raise_exception=True)
        try:
            change = services.dataset_create(
                auth=self.workspace_auth, files=uploaded(request), **goal.validated_data
            )
        except UploadRefused as exc:
            return refused(exc)
        return Response(
            dataset_payload(
                change.dataset, request, checks=self._checks(change.dataset, request), notices=change.notices
            ),
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(operation_id="datasets_retrieve", parameters=[MODEL_PARAM], responses=dict)
    def retrieve(self, request: Request, pk: str) -> Response:
        dataset = self.get_object()
        return Response(dataset_payload(dataset, request, checks=self._checks(dataset, request)))

    @extend_schema(request=GoalSerializer, responses=dict)
    def partial_update(self, request: Request, pk: str) -> Response:
        goal = GoalSerializer(data=request.data, partial=True)
        goal.is_valid(raise_exception=True)
        dataset = services.dataset_update(dataset=self.get_object(), **goal.validated_data)
        return Response(dataset_payload(dataset, request, checks=self._checks(dataset, request)))

    def destroy(self, request: Request, pk: str) -> Response:
        services.dataset_delete(dataset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request={"multipart/form-data": DatasetCreateSerializer}, responses={201: dict})
    @action(detail=True, methods=["post"])
    def images(self, request: Request, pk: str) -> Response:
        """Add more images (same rules as the first upload)."""
        try:
            change = services.dataset_add_files(dataset=self.get_object(), files=uploaded(request))
        except UploadRefused as exc:
            return refused(exc)
        return Response(
            dataset_payload(
                change.dataset, request, checks=self._checks(change.dataset, request), notices=change.notices
            ),
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=CaptionsSerializer, responses=dict)
    @action(detail=True, methods=["patch", "post"])
    def captions(self, request: Request, pk: str) -> Response:
        data = CaptionsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = services.dataset_set_captions(
            dataset=self.get_object(), captions=data.validated_data["captions"]
        )
        return Response(dataset_payload(dataset, request, checks=self._checks(dataset, request)))

    @extend_schema(parameters=[MODEL_PARAM], responses=dict)
    @action(detail=True, methods=["get"])
    def checks(self, request: Request, pk: str) -> Response:
        checks = self._checks(self.get_object(), request)
        if checks is None:
            raise ValidationError(
                {"model": "Install a base model (or pass ?family=sd15|sdxl|flux) to check against."}
            )
        return Response(checks)

    @action(detail=True, methods=["delete"], url_path=f"items/(?P<item_id>{UUID_PATTERN})")
    def delete_item(self, request: Request, pk: str, item_id: str) -> Response:
        dataset = self.get_object()
        item = access.get_dataset_item_for_workspace(workspace=self.workspace, dataset=dataset, id=item_id)
        services.dataset_item_delete(item=item)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrainingViewSet(RefuseTooManyFiles, mixins.ListModelMixin, WorkspaceScopedViewSet):
    """LoRA training jobs."""

    queryset = TrainingJob.objects.select_related("lora", "dataset")
    serializer_class = TrainingCreateSerializer
    scope_map = {"POST": "train"}
    lookup_value_regex = UUID_PATTERN
    parser_classes = [JsonObjectParser, MultiPartParser, FormParser]

    def get_object(self) -> TrainingJob:
        return access.get_training_for_workspace(workspace=self.workspace, id=self.kwargs["pk"])

    def filter_for_request(self, queryset: Any) -> Any:
        if wanted := self.request.query_params.get("status"):
            queryset = queryset.filter(status__in=wanted.split(","))
        return queryset

    @extend_schema(operation_id="trainings_list", responses=dict)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([training_payload(j, request) for j in page or []])

    @extend_schema(operation_id="trainings_retrieve", responses=dict)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(training_payload(self.get_object(), request))

    @extend_schema(
        request={
            "multipart/form-data": TrainingCreateSerializer,
            "application/json": TrainingCreateSerializer,
        },
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={201: dict},
    )
    def create(self, request: Request) -> Response:
        goal = GoalSerializer(data=request.data)
        goal.is_valid(raise_exception=True)
        meta = TrainingMetaSerializer(data=request.data)
        meta.is_valid(raise_exception=True)
        files = uploaded(request)
        dataset_id = meta.validated_data.get("dataset")
        if bool(files) == bool(dataset_id):
            raise ValidationError(
                {
                    "images": "Send the images (or a zip) in `images`, or an existing `dataset` id — "
                    "one of the two."
                }
            )
        model_id = meta.validated_data.get("model")
        if not model_id:
            default = default_trainable_model(workspace=self.workspace)
            if default is None:
                raise ValidationError(
                    {
                        "model": "No base model is installed to train on; install an SD 1.5, SDXL or "
                        "Flux model from the catalog."
                    }
                )
            model_id = str(default.pk)
        model, _ = trainable_model(workspace=self.workspace, id=model_id)
        # A retry of a request that already made its training gets that training, before the images
        # are stored again (a retried upload would otherwise leave a new, unused dataset each time).
        earlier = training_for_idempotency_key(
            workspace=self.workspace, key=request.headers.get("Idempotency-Key", "")
        )
        if earlier is not None:
            return Response(training_payload(earlier, request), status=status.HTTP_200_OK)
        overrides = param_overrides(request.data)
        try:  # refuse bad parameters before anything is stored
            resolve_params(model.family, overrides, quick=wants_quick_preset(model))
        except ParamError as exc:
            raise ValidationError({"params": exc.errors}) from exc
        created_dataset: Dataset | None = None
        if files:
            try:
                created_dataset = services.dataset_create(
                    auth=self.workspace_auth, files=files, **goal.validated_data
                ).dataset
            except UploadRefused as exc:
                return refused(exc)
            dataset = created_dataset
            goal_fields: dict[str, Any] = {}
        else:
            dataset = access.get_dataset_for_workspace(workspace=self.workspace, id=dataset_id)
            goal_fields = {k: v for k, v in goal.validated_data.items() if k != "name"}
        try:
            submitted = services.training_submit(
                auth=self.workspace_auth,
                dataset=dataset,
                model_id=model_id,
                name=goal.validated_data.get("name", ""),
                params=overrides,
                webhook=meta.validated_data.get("webhook", ""),
                webhook_events_filter=meta.validated_data.get("webhook_events_filter"),
                idempotency_key=request.headers.get("Idempotency-Key", ""),
                **goal_fields,
            )
        except BaseException:
            if created_dataset is not None:
                with transaction.atomic():
                    services.dataset_delete(dataset=created_dataset)
            raise
        if not submitted.created and created_dataset is not None:
            # Two requests with the same key at once: the other one's training stands; drop ours.
            with transaction.atomic():
                services.dataset_delete(dataset=created_dataset)
        return Response(
            training_payload(submitted.job, request),
            status=status.HTTP_201_CREATED if submitted.created else status.HTTP_200_OK,
        )

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return Response(training_payload(services.training_cancel(job=self.get_object()), request))

    @extend_schema(responses=dict)
    @action(detail=False, methods=["get"])
    def presets(self, request: Request) -> Response:
        """The presets per family, every parameter's bounds and explanation, and the models to train on."""
        body = describe_presets()
        body["models"] = [
            {
                "id": str(m.pk),
                "name": m.name,
                "family": m.family,
                "is_demo": m.is_demo,
                "preset": "quick" if wants_quick_preset(m) else "full",
            }
            for m in trainable_models(workspace=self.workspace)
        ]
        return Response(body)
