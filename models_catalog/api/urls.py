from django.urls import path

from kizy_site.routers import OptionalSlashRouter

from .views import IntentViewSet, LoraViewSet, ModelViewSet, SuggestView

router = OptionalSlashRouter()
router.register("models", ModelViewSet, basename="catalog-model")
router.register("loras", LoraViewSet, basename="catalog-lora")
router.register("intents", IntentViewSet, basename="catalog-intent")

urlpatterns = [path("suggest", SuggestView.as_view(), name="catalog-suggest"), *router.urls]
