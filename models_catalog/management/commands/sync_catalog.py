from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_catalog.services.sync import catalog_sync


class Command(BaseCommand):
    help = "Sync the public model & LoRA catalog from CivitAI or Hugging Face (idempotent; keeps a report)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, choices=["civitai", "huggingface"])
        parser.add_argument("--query", default="", help="Search text (a partial sync).")
        parser.add_argument("--limit", type=int, default=None, help="At most this many models/repos.")
        parser.add_argument(
            "--recheck",
            type=int,
            default=None,
            help="Look up at most N catalogued models missing from the listing and withdraw those gone "
            "upstream (default: all after a full sync, none after a --query/--limit sync).",
        )

    def handle(
        self, *args: Any, source: str, query: str, limit: int | None, recheck: int | None, **options: Any
    ) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        report = catalog_sync(source=source, query=query, limit=limit, recheck=recheck, trigger="command")
        self.stdout.write(
            f"{report.get_source_display()} sync {report.outcome}: seen {report.seen}, "
            f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
            f"withdrawn {report.withdrawn}, "
            f"filtered by rating {report.filtered}, unknown family {report.flagged}, errors "
            f"{report.error_count}"
        )
        for error in report.errors[:20]:
            self.stderr.write(f"  {error['item']}: {error['error']}")
        if report.outcome == "failed":
            raise CommandError(f"sync failed (report #{report.pk})")
