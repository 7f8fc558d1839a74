"""allauth hooks: every new account gets its personal workspace (invitations are accepted from their link)."""
from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from .services import user_ensure_personal_workspace


class KizyAccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_ensure_personal_workspace(user=user)
        return user

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """Sign every allauth email with the site's public URL (KIZY_SITE_URL), not only its domain."""
        super().send_mail(template_prefix, email, {"site_url": settings.SITE_URL, **context})
