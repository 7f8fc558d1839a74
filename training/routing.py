from django.urls import path

from .consumers import TrainingEventsConsumer

websocket_urlpatterns = [
    path("ws/trainings/<uuid:training_id>/", TrainingEventsConsumer.as_asgi()),
]
