"""A content security policy on every response (no inline scripts; styles and scripts from self)."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = (
    "default-src 'self'; img-src 'self' data: blob: https:; media-src 'self' blob: https:; "
    "script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; font-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
# Swagger UI (drf-spectacular sidecar) needs inline script/style for its bootstrap.
RELAXED = POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            relaxed = request.path.startswith(("/api/docs", "/admin/"))
            response["Content-Security-Policy"] = RELAXED if relaxed else POLICY
        return response
