"""Compatibility surfaces under `/v1/` (Replicate predictions, OpenAI images)."""
from django.urls import path, re_path

from .openai_api import ImageEditsView, ImageGenerationsView
from .replicate_api import (
    FileDetailView,
    FilesView,
    ModelPredictionsView,
    PredictionCancelView,
    PredictionDetailView,
    PredictionsView,
)

urlpatterns = [
    re_path(r"^predictions/?$", PredictionsView.as_view(), name="replicate-predictions"),
    path("predictions/<uuid:prediction_id>", PredictionDetailView.as_view(), name="replicate-prediction"),
    path("predictions/<uuid:prediction_id>/cancel", PredictionCancelView.as_view(), name="replicate-cancel"),
    path("models/<str:owner>/<str:name>/predictions", ModelPredictionsView.as_view(), name="replicate-model-run"),
    re_path(r"^files/?$", FilesView.as_view(), name="replicate-files"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="replicate-file"),
    path("images/generations", ImageGenerationsView.as_view(), name="openai-images"),
    path("images/edits", ImageEditsView.as_view(), name="openai-image-edits"),
]
