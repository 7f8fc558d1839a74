from django.urls import path

from kizy_site.routers import OptionalSlashRouter

from .views_generations import GenerationViewSet
from .views_webhooks import WebhookDeliveryViewSet, WebhookEndpointViewSet, WebhookSecretView
from .views_workflows import NodeListView, WorkflowViewSet

router = OptionalSlashRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("generations", GenerationViewSet, basename="generation")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")

urlpatterns = [
    path("nodes", NodeListView.as_view(), name="api-nodes"),
    path("webhooks/secret", WebhookSecretView.as_view(), name="webhook-secret"),
    *router.urls,
]
