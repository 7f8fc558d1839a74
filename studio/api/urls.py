from django.urls import path

from kizy_site.routers import OptionalSlashRouter

from .views_generations import GenerationViewSet
from .views_workflows import NodeListView, WorkflowViewSet

router = OptionalSlashRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("generations", GenerationViewSet, basename="generation")

urlpatterns = [path("nodes", NodeListView.as_view(), name="api-nodes"), *router.urls]
