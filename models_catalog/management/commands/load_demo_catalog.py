from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from models_catalog.demo import DEMO_FAMILIES, ensure_upscaler, load_demo_catalog, tiny_dir


class Command(BaseCommand):
    help = (
        "Register the offline demo catalog: tiny random-weight SD 1.5 / SDXL / Flux / video models (built by "
        "make_demo_models into <KIZY_MODEL_STORE>/local/tiny when missing) and one demo LoRA per intent. "
        "Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-generate", action="store_true", help="Only register models already generated."
        )
        parser.add_argument(
            "--family", action="append", choices=DEMO_FAMILIES, help="Limit to these families."
        )

    def handle(self, *args: Any, no_generate: bool, family: list[str] | None, **options: Any) -> None:
        families = tuple(family or DEMO_FAMILIES)
        if not no_generate:
            self.stdout.write(f"Checking tiny demo models in {tiny_dir()} …")
        result = load_demo_catalog(generate=not no_generate, families=families)
        if result.generated:
            self.stdout.write(f"Generated tiny models: {', '.join(result.generated)}")
        self.stdout.write(
            f"Demo catalog: {len(result.models)} base models, {len(result.loras)} LoRAs (demo: random "
            "weights)."
        )
        for skipped in result.skipped:
            self.stdout.write(f"  skipped {skipped}")
        if not no_generate:
            self.install_upscaler()

    def install_upscaler(self) -> None:
        """Real Real-ESRGAN ×4 weights as `local:realesrgan-x4plus`, the upscale detailer's default (the same
        conversion as `make_demo_models`; kept when already there)."""
        try:
            written = ensure_upscaler()
        except (ImportError, FileNotFoundError, OSError) as exc:
            self.stderr.write(f"Upscaler weights not installed ({exc}); the upscale detailer will say so.")
            return
        if written is not None:
            self.stdout.write(f"Installed upscaler weights: {written.name}")
