from django.urls import path

from .views import catalog, catalog_import

urlpatterns = [
    path("", catalog, name="catalog"),
    path("import", catalog_import, name="catalog-import"),
]
