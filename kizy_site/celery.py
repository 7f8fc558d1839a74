"""The Celery app. Tasks are acks_late (a killed worker's task is redelivered) and routed to two
queues: `default` for bookkeeping and webhooks, `gpu` for generation and training."""
from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")

app = Celery("kizy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
# Each task names its queue in its decorator; nothing is routed by name pattern.
app.autodiscover_tasks()
