"""ASGI entry point: Django for HTTP, Channels for websockets (origin-checked, session or API key)."""
from __future__ import annotations

import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.ws_auth import WorkspaceWebsocketAuthMiddleware  # noqa: E402
from kizy_site.routing import websocket_urlpatterns  # noqa: E402


def _warm_up() -> None:
    """Load the node packs and the auto-pick index now, so the first request does not wait for them."""
    import logging

    try:
        from studio.engine import node_registry

        node_registry()
        from models_catalog.suggest import warm_up

        warm_up()
    except Exception:  # noqa: BLE001 - a cold start is slower, never broken
        logging.getLogger(__name__).warning("warm-up failed", exc_info=True)


if os.environ.get("KIZY_WARM_UP", "true").lower() not in ("0", "false", "no"):
    threading.Thread(target=_warm_up, daemon=True, name="kizy-warm-up").start()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            WorkspaceWebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)
