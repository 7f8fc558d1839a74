"""What the training job runner costs on top of a bare peft LoRA loop, and what a checkpoint costs.

On the tiny SD 1.5 model at 64 px (so the model's own work is small and any overhead shows), in the
same run and on the same images, captions, LoRA config and optimiser:

- bare:   a hand-written peft loop in the manner of diffusers' train_text_to_image_lora (cached latents
          and text embeddings, noise, timesteps, MSE, backward, clip, AdamW) — the baseline;
- runner: a real TrainingJob through ``training.runner.training_execute`` (lease + heartbeat, the job
          row updated as it goes, websocket events through the channel layer, cancel checks), with
          checkpoints out of the measured window;
- checkpoint: seconds per save (LoRA weights + optimiser + RNG/data state to storage), with and without
          the sample images drawn at each checkpoint.

Steps per second are measured between the first and the last step (model loading and data preparation
are outside, for both). Prints the ratio runner/bare (goal >= 0.95).
Usage: python bench/training.py [--steps N] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAMS = {"resolution": 64, "batch_size": 2, "rank": 4, "alpha": 4, "sample_steps": 2, "buckets": True}
IMAGES = 8


def images() -> list[bytes]:
    import io

    import numpy as np
    from PIL import Image

    out = []
    for seed in range(IMAGES):
        rng = np.random.default_rng(seed)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, 64 + 32 * (seed % 2), 3), dtype=np.uint8)).save(
            buffer, "PNG"
        )
        out.append(buffer.getvalue())
    return out


def bare_loop(model_dir: Path, pictures: list[bytes], captions: list[str], steps: int) -> float:
    """Steps per second of a minimal peft training loop (no events, no storage, no database)."""
    import io

    import numpy as np
    import torch
    import torch.nn.functional as F  # noqa: N812
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from peft import LoraConfig
    from PIL import Image

    from gpu_workers.training.images import fit_to_bucket, nearest_bucket

    pipe = StableDiffusionPipeline.from_pretrained(model_dir)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
    torch.manual_seed(0)
    pipe.unet.add_adapter(
        LoraConfig(
            r=PARAMS["rank"],
            lora_alpha=PARAMS["alpha"],
            init_lora_weights="gaussian",
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    params = [p for p in pipe.unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    by_bucket: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
    with torch.no_grad():
        for data, caption in zip(pictures, captions, strict=True):
            image = Image.open(io.BytesIO(data))
            bucket = nearest_bucket(image.width, image.height, PARAMS["resolution"])
            array = np.asarray(fit_to_bucket(image, bucket).image, dtype=np.uint8).copy()
            pixels = torch.from_numpy(array).permute(2, 0, 1).float().div(127.5).sub(1).unsqueeze(0)
            latents = pipe.vae.encode(pixels).latent_dist.sample() * pipe.vae.config.scaling_factor
            text = pipe.encode_prompt(caption, "cpu", 1, False)[0]
            by_bucket.setdefault(bucket, []).append((latents, text))
    batches = [
        group[i : i + PARAMS["batch_size"]]
        for group in by_bucket.values()
        for i in range(0, len(group), PARAMS["batch_size"])
    ]
    pipe.unet.train()
    times = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        latents = torch.cat([b[0] for b in batch])
        text = torch.cat([b[1] for b in batch])
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],))
        prediction = pipe.unet(scheduler.add_noise(latents, noise, timesteps), timesteps, text).sample
        loss = F.mse_loss(prediction.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


def setup_django(home: Path, model_store: Path) -> None:
    os.environ.update(
        {
            "KIZY_HOME": str(home),
            "KIZY_MODEL_STORE": str(model_store),
            "KIZY_DEVICE": "cpu",
            "DJANGO_SETTINGS_MODULE": "kizy_site.settings",
            "CELERY_TASK_ALWAYS_EAGER": "true",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def runner_job(pictures: list[bytes], captions: list[str], params: dict[str, Any], *, samples: bool) -> Any:
    """A TrainingJob written through the services (nothing queued): the runner is timed by the caller."""
    import io
    from unittest import mock

    from accounts.models import User
    from accounts.services import workspace_create
    from accounts.workspace_auth import auth_for_membership
    from models_catalog.models import BaseModel
    from training import services

    user = User.objects.create_user(f"bench{time.monotonic_ns()}@example.com", "x")
    workspace = workspace_create(name="Bench", owner=user)
    auth = auth_for_membership(workspace.memberships.get(user=user))
    model, _ = BaseModel.objects.get_or_create(
        source="local",
        external_id="sd15",
        external_version="",
        workspace=None,
        defaults={
            "name": "Tiny SD 1.5",
            "family": "sd15",
            "approved": True,
            "status": "installed",
            "store_ref": "local:sd15",
        },
    )
    files = []
    for index, data in enumerate(pictures):
        handle = io.BytesIO(data)
        handle.name = f"{index}.png"
        files.append((handle.name, handle))
    dataset = services.dataset_create(auth=auth, files=files, name="Bench").dataset
    services.dataset_set_captions(
        dataset=dataset, captions={str(i.pk): captions[n] for n, i in enumerate(dataset.items.all())}
    )
    with mock.patch("training.services.enqueue"):
        job = services.training_submit(auth=auth, dataset=dataset, model_id=str(model.pk), params=params).job
    if not samples:
        type(job).objects.filter(pk=job.pk).update(sample_prompts=[])
    return job


def timed_run(job: Any) -> tuple[float, list[float]]:
    """(steps per second between the first and the last step, seconds of each checkpoint)."""
    from training import runner

    stamps: list[float] = []
    saves: list[float] = []
    original_step, original_checkpoint = runner.TrainingEventSink.step, runner.TrainingEventSink.checkpoint

    def step(self: Any, **kwargs: Any) -> None:
        original_step(self, **kwargs)
        stamps.append(time.perf_counter())

    def checkpoint(self: Any, checkpoint: Any) -> None:
        original_checkpoint(self, checkpoint)
        saves.append(checkpoint.seconds)

    runner.TrainingEventSink.step, runner.TrainingEventSink.checkpoint = step, checkpoint  # type: ignore[method-assign]
    try:
        outcome = runner.training_execute(job_id=str(job.pk))
    finally:
        runner.TrainingEventSink.step, runner.TrainingEventSink.checkpoint = (
            original_step,
            original_checkpoint,
        )  # type: ignore[method-assign]
    if outcome != "succeeded":
        raise SystemExit(f"the training did not succeed: {outcome}")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), saves


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is steadiest)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="back-to-back bare/runner pairs; the ratio is the median of the pairs' ratios",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from gpu_workers.models.tiny import build_sd15

    with tempfile.TemporaryDirectory(prefix="kizy-bench-training-") as folder:
        root = Path(folder)
        build_sd15(root / "store" / "local")
        setup_django(root / "home", root / "store")
        pictures = images()
        captions = [f"a photo of zkw, picture {i}" for i in range(IMAGES)]
        measured = {**PARAMS, "steps": args.steps, "checkpoint_every": args.steps}

        bare, run = [], []
        for _ in range(args.rounds):
            bare.append(bare_loop(root / "store" / "local" / "sd15", pictures, captions, args.steps))
            run.append(timed_run(runner_job(pictures, captions, measured, samples=False))[0])
        every = max(args.steps // 4, 1)
        _, with_samples = timed_run(
            runner_job(
                pictures, captions, {**PARAMS, "steps": args.steps, "checkpoint_every": every}, samples=True
            )
        )
        _, without_samples = timed_run(
            runner_job(
                pictures, captions, {**PARAMS, "steps": args.steps, "checkpoint_every": every}, samples=False
            )
        )

    ratios = [r / b for b, r in zip(bare, run, strict=True)]
    ratio = statistics.median(ratios)
    best_bare, best_run = max(bare), max(run)
    step_seconds = 1 / statistics.median(run)
    save = statistics.median(without_samples)
    save_samples = statistics.median(with_samples)
    print(
        f"tiny SD 1.5, {PARAMS['resolution']} px, batch {PARAMS['batch_size']}, rank {PARAMS['rank']}, "
        f"{args.steps} steps, {args.threads} thread(s), {args.rounds} back-to-back pairs"
    )
    print(f"bare peft loop     {best_bare:7.2f} steps/s best  (pairs: {', '.join(f'{v:.2f}' for v in bare)})")
    print(f"job runner         {best_run:7.2f} steps/s best  (pairs: {', '.join(f'{v:.2f}' for v in run)})")
    print(
        f"ratio runner/bare  {ratio:7.3f} median        (pairs: {', '.join(f'{v:.2f}' for v in ratios)}; "
        f"best/best {best_run / best_bare:.3f}; goal >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})"
    )
    print(
        f"checkpoint save    {save * 1000:7.1f} ms per save = {save / step_seconds:.2f} steps "
        f"(LoRA + optimiser + RNG/data state to storage)"
    )
    print(
        f"  with samples     {save_samples * 1000:7.1f} ms per save = "
        f"{save_samples / step_seconds:.2f} steps "
        f"(+ 2 sample images, {PARAMS['sample_steps']} denoising steps each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
