"""Browser pages of the studio: the studio itself, the gallery and one generation's record."""
from django.urls import path

from . import views, views_settings

urlpatterns = [
    path("studio", views.studio, name="studio"),
    path("studio/recent", views.studio_recent, name="studio-recent"),
    path("gallery", views.gallery, name="gallery"),
    path("gallery/<uuid:generation_id>", views.generation_detail, name="generation-detail"),
    path("settings/workspace/default-model", views.workspace_default_model_view, name="workspace-default-model"),
    path("settings/webhooks", views_settings.webhooks_view, name="webhooks-settings"),
    path("settings/webhooks/<uuid:endpoint_id>/delete", views_settings.webhook_delete_view, name="webhook-delete"),
    path("settings/webhooks/secret/rotate", views_settings.webhook_secret_rotate_view, name="webhook-secret-rotate"),
]
