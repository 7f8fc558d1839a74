"""ASGI entry point: Django for HTTP, Channels for websockets (origin-checked, session or API key)."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.ws_auth import WorkspaceWebsocketAuthMiddleware  # noqa: E402
from kizy_site.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            WorkspaceWebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)
