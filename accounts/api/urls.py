from django.urls import path

from kizy_site.routers import OptionalSlashRouter

from .views import ApiKeyViewSet, MeView

router = OptionalSlashRouter()
router.register("api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = [path("me", MeView.as_view(), name="api-me"), *router.urls]
