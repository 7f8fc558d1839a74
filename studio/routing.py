from django.urls import path

from .consumers import GenerationEventsConsumer, WorkspaceEventsConsumer

websocket_urlpatterns = [
    path("ws/generations/<uuid:generation_id>/", GenerationEventsConsumer.as_asgi()),
    path("ws/workspace/", WorkspaceEventsConsumer.as_asgi()),
]
