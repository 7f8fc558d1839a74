"""Create the demo account for embedded mode (idempotent; refused in production)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import user_ensure_personal_workspace

DEMO_EMAIL = "demo@kizy.local"
DEMO_PASSWORD = "kizy-demo"  # noqa: S105 - the published demo login, refused in production


class Command(BaseCommand):
    help = "Create the demo account (demo@kizy.local / kizy-demo) with its workspace, for local use."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("bootstrap_demo is for embedded mode; it would create a known password in production.")
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(DEMO_EMAIL, DEMO_PASSWORD, name="Demo", is_staff=True, is_superuser=True)
            self.stdout.write(f"Created demo account {DEMO_EMAIL} / {DEMO_PASSWORD}")
        workspace = user_ensure_personal_workspace(user=user)
        self.stdout.write(f"Demo workspace: {workspace.name}")
