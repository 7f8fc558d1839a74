"""Browser pages of the studio: the studio itself, the gallery and one generation's record."""
from django.urls import path

from . import views

urlpatterns = [
    path("studio", views.studio, name="studio"),
    path("gallery", views.gallery, name="gallery"),
    path("gallery/<uuid:generation_id>", views.generation_detail, name="generation-detail"),
]
