from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from kizy_site import checks  # noqa: F401  (registers the production deploy checks)

        from . import schema  # noqa: F401  (registers the OpenAPI authentication extensions)
        from .sites import sync_site

        # After django.contrib.sites has created its default "example.com" row: rename it to Kizy.
        post_migrate.connect(sync_site, sender=apps.get_app_config("sites"), dispatch_uid="kizy-sync-site")
