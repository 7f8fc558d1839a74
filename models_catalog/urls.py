from django.urls import path

from .views import catalog, catalog_import, catalog_install

urlpatterns = [
    path("", catalog, name="catalog"),
    path("import", catalog_import, name="catalog-import"),
    path("<str:kind>/<uuid:entry_id>/install", catalog_install, name="catalog-install"),
]
