"""Browser pages of fine-tuning (mounted at /training/)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.training_list, name="trainings"),
    path("new", views.training_new, name="training-new"),
    path("datasets/<uuid:dataset_id>", views.dataset_page, name="training-dataset"),
    path("datasets/<uuid:dataset_id>/images", views.dataset_add_images, name="training-dataset-images"),
    path(
        "datasets/<uuid:dataset_id>/images/<uuid:item_id>/remove",
        views.dataset_remove_image,
        name="training-dataset-remove-image",
    ),
    path("<uuid:training_id>", views.training_detail, name="training-detail"),
    path("<uuid:training_id>/cancel", views.training_cancel, name="training-cancel"),
]
