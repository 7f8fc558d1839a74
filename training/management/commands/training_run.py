"""Run (or resume) one training in this process, exactly as a `gpu` worker's task would.

Useful to train without a Celery worker, to resume a job by hand after fixing a worker, and in the
tests that kill a real worker process mid-training.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from studio.engine import flush_events
from training.runner import training_execute


class Command(BaseCommand):
    help = "Run or resume one training job (by id) in this process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", help="The training's id (GET /api/v1/trainings).")

    def handle(self, *args: Any, job_id: str, **options: Any) -> None:
        outcome = training_execute(job_id=job_id)
        flush_events()  # the last websocket events leave before this process does
        self.stdout.write(outcome)
