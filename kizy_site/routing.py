"""Websocket routes of every app, collected in one place."""
from __future__ import annotations

from typing import Any

from studio.routing import websocket_urlpatterns as studio_routes
from training.routing import websocket_urlpatterns as training_routes

websocket_urlpatterns: list[Any] = [*studio_routes, *training_routes]
