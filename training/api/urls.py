from kizy_site.routers import OptionalSlashRouter

from .views import DatasetViewSet, TrainingViewSet

router = OptionalSlashRouter()
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("trainings", TrainingViewSet, basename="training")

urlpatterns = router.urls
