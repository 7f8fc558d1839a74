"""The Celery app. Tasks are acks_late (a killed worker's task is redelivered) and routed to two
queues: `default` for bookkeeping and webhooks, `gpu` for generation and training."""
from __future__ import annotations

import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")

app = Celery("kizy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
# Each task names its queue in its decorator; nothing is routed by name pattern.
app.autodiscover_tasks()


@signals.worker_init.connect
def _check_node_packs(**kwargs: object) -> None:
    """A broken or duplicate node pack stops the worker at start-up (studio.node_checks)."""
    from studio.node_checks import refuse_to_start_worker

    refuse_to_start_worker(**kwargs)
