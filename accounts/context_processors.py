from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .access import memberships_for_user


def workspace(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {
        "active_membership": membership,
        "active_workspace": membership.workspace,
        "my_memberships": memberships_for_user(user=request.user),  # type: ignore[arg-type]
    }
