from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .health import healthz
from .storage import serve_signed_file

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("models_catalog.api.urls")),
    path("", include("studio.api.urls")),
    path("", include("training.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api_v1)),
    path("v1/", include("studio.compat.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^files/(?P<name>.+)$", serve_signed_file, name="signed-file"),
    path("training/", include("training.urls")),
    path("models/", include("models_catalog.urls")),
    path("", include("studio.urls")),
    path("", include("accounts.urls")),
]
