"""The LoRA training loop, in the manner of diffusers' ``train_text_to_image_lora`` scripts.

- SD 1.5 / SDXL: noise-prediction loss (epsilon or v-prediction, from the scheduler config) on a UNet
  with a peft LoRA on its attention projections; SDXL adds pooled text embeddings and size/crop ids.
- Flux: flow matching (``train_dreambooth_lora_flux``): ``x_t = (1 - σ) x + σ ε``, the transformer
  predicts ``ε - x`` on packed latents, with Flux's guidance embedding.
- On a GPU: bf16/fp16 autocast with the frozen weights in half precision and the LoRA in fp32, and
  gradient checkpointing. On a CPU everything is fp32.
- Text is encoded once and latents' distributions computed once (the text encoders and the VAE are
  frozen); each step samples the latent, the noise and the timestep from one seeded generator.
- A checkpoint holds the LoRA weights, the optimiser state, the step, every RNG state and the data
  order, so a run resumed from it continues exactly where the checkpoint was taken: steps before it
  are never redone, and a resumed run trains the same weights as an uninterrupted one.
- Sample images are drawn at every checkpoint with fixed seeds; cancellation is checked every step.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from gpu_workers.artifacts import ArtifactStore, artifact_key
from gpu_workers.models.lazy import untyped
from gpu_workers.sdk import JobCanceled, encode_png
from gpu_workers.training import lora_files
from gpu_workers.training.images import fit_to_bucket, nearest_bucket
from gpu_workers.training.spec import (
    Checkpoint,
    NullTrainingEvents,
    Sample,
    TrainingEvents,
    TrainingResult,
    TrainingSpec,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
MAX_GRAD_NORM = 1.0
ARCHITECTURE = {
    "sd15": "stable-diffusion-v1/lora",
    "sdxl": "stable-diffusion-xl-v1-base/lora",
    "flux": "flux-1-dev/lora",
}


@dataclass
class Example:
    """One training image, prepared once: its latent distribution and its caption's embeddings."""

    mean: torch.Tensor
    std: torch.Tensor
    text: dict[str, torch.Tensor]
    bucket: tuple[int, int]
    time_ids: torch.Tensor | None = None


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode()


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


class LoraTrainer:
    """Trains one LoRA described by a ``TrainingSpec``; ``run()`` returns the stored result."""

    def __init__(
        self,
        spec: TrainingSpec,
        *,
        model_path: Path,
        artifacts: ArtifactStore,
        events: TrainingEvents | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        device: str = "cpu",
    ) -> None:
        self.spec = spec
        self.params = spec.params
        self.family = spec.family
        self.model_path = Path(model_path)
        self.artifacts = artifacts
        self.events: TrainingEvents = events or NullTrainingEvents()
        self.is_cancelled = is_cancelled or (lambda: False)
        self.device = torch.device(device)
        self.on_gpu = self.device.type == "cuda"
        self.weight_dtype = self._weight_dtype()
        self.generator = torch.Generator().manual_seed(int(self.params["seed"]))
        self.loss_history: list[list[float]] = []
        self.samples: list[Sample] = []
        self.epoch = 0
        self.batches: list[list[int]] = []
        self.batch_pos = 0
        self.step = 0

    # -- set-up --------------------------------------------------------------------------------------

    def _weight_dtype(self) -> torch.dtype:
        choice = self.params.get("mixed_precision", "auto")
        if not self.on_gpu or choice == "no":
            return torch.float32
        if choice == "fp16":
            return torch.float16
        if choice == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    def autocast(self) -> AbstractContextManager[Any]:
        if self.weight_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.weight_dtype)

    def load(self) -> None:
        """Load the pipeline, freeze it, and add a fresh (seeded) LoRA to the denoiser."""
        diffusers = untyped("diffusers")
        cast_training_params = untyped("diffusers.training_utils").cast_training_params

        self.pipe = lora_files.pipeline_class(self.family).from_pretrained(
            self.model_path, use_safetensors=True, dtype=self.weight_dtype
        )
        self.pipe.set_progress_bar_config(disable=True)
        self.denoiser = self.pipe.transformer if self.family == "flux" else self.pipe.unet
        for module in self.pipe.components.values():
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False)
                module.to(self.device)
        torch.manual_seed(int(self.params["seed"]))
        self.lora_config = untyped("peft").LoraConfig(
            r=int(self.params["rank"]),
            lora_alpha=float(self.params["alpha"]),
            init_lora_weights="gaussian",
            target_modules=LORA_TARGETS,
        )
        self.denoiser.add_adapter(self.lora_config)
        if self.weight_dtype != torch.float32:
            cast_training_params(self.denoiser, dtype=torch.float32)
        if self.on_gpu and self.params.get("gradient_checkpointing", True):
            self.denoiser.enable_gradient_checkpointing()
        self.trainable = [p for p in self.denoiser.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trainable,
            lr=float(self.params["learning_rate"]),
            betas=(0.9, 0.999),
            weight_decay=1e-2,
            eps=1e-8,
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.weight_dtype == torch.float16 else None
        if self.family == "flux":
            self.noise_scheduler: Any = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
                self.pipe.scheduler.config
            )
        else:
            self.noise_scheduler = diffusers.DDPMScheduler.from_config(self.pipe.scheduler.config)
        self.vae_scale = 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_text(self, prompt: str) -> dict[str, torch.Tensor]:
        if self.family == "sd15":
            embeds, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
            return {"encoder_hidden_states": embeds}
        if self.family == "sdxl":
            embeds, _, pooled, _ = self.pipe.encode_prompt(
                prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
            return {"encoder_hidden_states": embeds, "text_embeds": pooled}
        embeds, pooled, text_ids = self.pipe.encode_prompt(
            prompt, device=self.device, max_sequence_length=512
        )
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled, "txt_ids": text_ids}

    @torch.no_grad()
    def prepare_data(self) -> None:
        resolution = int(self.params["resolution"])
        self.examples: list[Example] = []
        text_cache: dict[str, dict[str, torch.Tensor]] = {}
        for item in self.spec.items:
            image = Image.open(io.BytesIO(self.artifacts.get(item.key)))
            image.load()
            bucket = nearest_bucket(
                image.width, image.height, resolution, use_buckets=bool(self.params["buckets"])
            )
            fitted = fit_to_bucket(image, bucket)
            pixels = torch.from_numpy(_as_array(fitted.image)).permute(2, 0, 1).float().div(127.5).sub(1.0)
            pixels = pixels.unsqueeze(0).to(self.device, dtype=self.weight_dtype)
            dist = self.pipe.vae.encode(pixels).latent_dist
            if item.caption not in text_cache:
                text_cache[item.caption] = self.encode_text(item.caption)
            time_ids = None
            if self.family == "sdxl":
                time_ids = torch.tensor(
                    [[image.height, image.width, fitted.crop_top, fitted.crop_left, bucket[1], bucket[0]]],
                    dtype=self.weight_dtype,
                    device=self.device,
                )
            self.examples.append(
                Example(dist.mean.float(), dist.std.float(), text_cache[item.caption], bucket, time_ids)
            )
        self.events.log(
            f"Prepared {len(self.examples)} image(s) in {len({e.bucket for e in self.examples})} "
            f"bucket(s) at {resolution} px."
        )

    # -- data order ----------------------------------------------------------------------------------

    def _new_epoch(self) -> None:
        """Shuffle within each bucket, batch, then shuffle the batches (one seeded generator)."""
        by_bucket: dict[tuple[int, int], list[int]] = {}
        for index, example in enumerate(self.examples):
            by_bucket.setdefault(example.bucket, []).append(index)
        size = int(self.params["batch_size"])
        batches: list[list[int]] = []
        for bucket in sorted(by_bucket):
            members = by_bucket[bucket]
            order = torch.randperm(len(members), generator=self.generator).tolist()
            shuffled = [members[i] for i in order]
            batches += [shuffled[i : i + size] for i in range(0, len(shuffled), size)]
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        self.batches = [batches[i] for i in order]
        self.batch_pos = 0
        self.epoch += 1

    def next_batch(self) -> list[int]:
        if self.batch_pos >= len(self.batches):
            self._new_epoch()
        batch = self.batches[self.batch_pos]
        self.batch_pos += 1
        return batch

    # -- one step ------------------------------------------------------------------------------------

    def _randn(self, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator).to(self.device)

    def loss(self, batch: list[int]) -> torch.Tensor:
        examples = [self.examples[i] for i in batch]
        mean = torch.cat([e.mean for e in examples])
        std = torch.cat([e.std for e in examples])
        latents = mean + std * self._randn(mean.shape)
        text = {
            key: torch.cat([e.text[key] for e in examples]) if key != "txt_ids" else examples[0].text[key]
            for key in examples[0].text
        }
        if self.family == "flux":
            return self._flow_matching_loss(latents, text)
        latents = latents * self.pipe.vae.config.scaling_factor
        noise = self._randn(latents.shape)
        bsz = latents.shape[0]
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (bsz,), generator=self.generator
        ).to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        kwargs: dict[str, Any] = {}
        if self.family == "sdxl":
            time_ids = torch.cat([e.time_ids for e in examples if e.time_ids is not None])
            kwargs["added_cond_kwargs"] = {"text_embeds": text["text_embeds"], "time_ids": time_ids}
        with self.autocast():
            prediction = self.denoiser(
                noisy.to(self.weight_dtype),
                timesteps,
                text["encoder_hidden_states"],
                return_dict=False,
                **kwargs,
            )[0]
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")

    def _flow_matching_loss(self, latents: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        FluxPipeline = untyped("diffusers").FluxPipeline  # noqa: N806

        vae_config = self.pipe.vae.config
        latents = (latents - vae_config.shift_factor) * vae_config.scaling_factor
        bsz, channels, height, width = latents.shape
        noise = self._randn(latents.shape)
        u = torch.rand((bsz,), generator=self.generator)
        indices = (u * self.noise_scheduler.config.num_train_timesteps).long()
        sigmas = self.noise_scheduler.sigmas[indices].to(self.device, dtype=latents.dtype).view(bsz, 1, 1, 1)
        timesteps = self.noise_scheduler.timesteps[indices].to(self.device)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        packed = FluxPipeline._pack_latents(noisy, bsz, channels, height, width)
        image_ids = FluxPipeline._prepare_latent_image_ids(
            bsz, height // 2, width // 2, self.device, self.weight_dtype
        )
        guidance = None
        if self.denoiser.config.guidance_embeds:
            guidance = torch.full((bsz,), float(self.params["guidance_scale"]), device=self.device)
        with self.autocast():
            prediction = self.denoiser(
                hidden_states=packed.to(self.weight_dtype),
                timestep=timesteps / 1000,
                guidance=guidance,
                pooled_projections=text["pooled_projections"],
                encoder_hidden_states=text["encoder_hidden_states"],
                txt_ids=text["txt_ids"],
                img_ids=image_ids,
                return_dict=False,
            )[0]
        prediction = FluxPipeline._unpack_latents(
            prediction, height * self.vae_scale, width * self.vae_scale, self.vae_scale
        )
        return F.mse_loss(prediction.float(), (noise - latents).float(), reduction="mean")

    def learning_rate(self, step: int) -> float:
        base = float(self.params["learning_rate"])
        warmup = int(self.params.get("lr_warmup_steps", 0))
        total = int(self.params["steps"])
        if warmup and step <= warmup:
            return base * step / warmup
        if self.params.get("lr_scheduler") == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return base * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return base

    def train_step(self, step: int) -> float:
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.loss(self.next_batch())
        if self.scaler is not None:
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, MAX_GRAD_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(self.trainable, MAX_GRAD_NORM)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach().item())

    # -- checkpoints ---------------------------------------------------------------------------------

    def lora_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(self.denoiser).items()}

    def save_checkpoint(self, step: int) -> Checkpoint:
        started = time.monotonic()
        samples = tuple(self.draw_samples(step))
        self.samples = list(samples)
        prefix = self.spec.checkpoint_prefix(step)
        self.artifacts.put(
            prefix + "lora.safetensors",
            lora_files.tensors_bytes(self.lora_state()),
            "application/octet-stream",
        )
        self.artifacts.put(
            prefix + "optimizer.safetensors",
            lora_files.optimizer_bytes(self.optimizer.state_dict()),
            "application/octet-stream",
        )
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "family": self.family,
            "params": self.params,
            "epoch": self.epoch,
            "batches": self.batches,
            "batch_pos": self.batch_pos,
            "generator": _b64(self.generator.get_state()),
            "torch_rng": _b64(torch.get_rng_state()),
            "cuda_rng": [_b64(s) for s in torch.cuda.get_rng_state_all()] if self.on_gpu else [],
            "python_rng": repr(random.getstate()),
            "loss_history": self.loss_history,
            "samples": [s.as_dict() for s in samples],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }
        # Written last: a checkpoint without its state.json is incomplete and never resumed from.
        self.artifacts.put(prefix + "state.json", json.dumps(state).encode(), "application/json")
        checkpoint = Checkpoint(step=step, prefix=prefix, samples=samples, seconds=time.monotonic() - started)
        self.events.checkpoint(checkpoint)
        return checkpoint

    def load_checkpoint(self, step: int) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load

        prefix = self.spec.checkpoint_prefix(step)
        state = json.loads(self.artifacts.get(prefix + "state.json"))
        if state.get("format") != CHECKPOINT_FORMAT or state.get("family") != self.family:
            raise ValueError(f"checkpoint at step {step} was written by another trainer version or family")
        lora = load(self.artifacts.get(prefix + "lora.safetensors"))
        incompatible = set_peft_model_state_dict(self.denoiser, lora)
        if unexpected := list(getattr(incompatible, "unexpected_keys", None) or []):
            raise ValueError(f"checkpoint at step {step} does not match this model: {unexpected[:3]}")
        optimizer = lora_files.optimizer_state(self.artifacts.get(prefix + "optimizer.safetensors"))
        for param_state in optimizer["state"].values():
            for name, value in list(param_state.items()):
                if isinstance(value, torch.Tensor) and name != "step":
                    param_state[name] = value.to(self.device)
        self.optimizer.load_state_dict(optimizer)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(_unb64(state["generator"]))
        torch.set_rng_state(_unb64(state["torch_rng"]))
        if self.on_gpu and state["cuda_rng"]:
            torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda_rng"]])
        self.epoch, self.batches, self.batch_pos = state["epoch"], state["batches"], state["batch_pos"]
        self.loss_history = [entry for entry in state["loss_history"] if entry[0] <= step]
        self.samples = [Sample(**s) for s in state.get("samples", [])]
        self.step = step

    # -- samples -------------------------------------------------------------------------------------

    @torch.no_grad()
    def draw_samples(self, step: int) -> list[Sample]:
        if not self.spec.sample_prompts:
            return []
        resolution = int(self.params["resolution"])
        self.denoiser.eval()
        samples = []
        try:
            for index, prompt in enumerate(self.spec.sample_prompts):
                seed = int(self.params["seed"]) + index
                kwargs: dict[str, Any] = (
                    {"guidance_scale": float(self.params["guidance_scale"])} if self.family == "flux" else {}
                )
                with self.autocast():
                    image = self.pipe(
                        prompt=prompt,
                        num_inference_steps=int(self.params["sample_steps"]),
                        generator=torch.Generator().manual_seed(seed),
                        height=resolution,
                        width=resolution,
                        output_type="pil",
                        **kwargs,
                    ).images[0]
                data = encode_png(image)
                digest = hashlib.sha256(data).hexdigest()
                key = artifact_key(self.spec.workspace_id, digest, "png")
                if not self.artifacts.exists(key):
                    self.artifacts.put(key, data, "image/png")
                samples.append(Sample(key, digest, prompt, seed, image.width, image.height))
        finally:
            self.denoiser.train()
        return samples

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> TrainingResult:
        total = int(self.params["steps"])
        every = max(1, int(self.params["checkpoint_every"]))
        self.load()
        self.prepare_data()
        if self.spec.resume_from_step:
            self.load_checkpoint(self.spec.resume_from_step)
            self.events.log(
                f"Resumed from the checkpoint at step {self.step}; steps 1-{self.step} are not redone."
            )
        self.events.started(
            total_steps=total, resumed_from=self.spec.resume_from_step, device=str(self.device)
        )
        self.denoiser.train()
        while self.step < total:
            if self.is_cancelled():
                raise JobCanceled("the training was canceled")
            step = self.step + 1
            loss = self.train_step(step)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss} at step {step}; lower the learning rate "
                    f"(now {self.params['learning_rate']})"
                )
            self.step = step
            self.loss_history.append([step, round(loss, 6), self.spec.run])
            self.events.step(
                step=step, total=total, loss=loss, lr=self.learning_rate(step), run=self.spec.run
            )
            if step % every == 0 or step == total:
                self.save_checkpoint(step)
        return self.finish()

    def finish(self) -> TrainingResult:
        state = self.lora_state()
        adapter_config = self.denoiser.peft_config["default"].to_dict()
        adapter_config["target_modules"] = sorted(adapter_config.get("target_modules") or LORA_TARGETS)
        metadata = {
            "modelspec.architecture": ARCHITECTURE[self.family],
            "modelspec.title": self.spec.trigger_word,
            "modelspec.trigger_phrase": self.spec.trigger_word,
            "kizy.family": self.family,
            "kizy.steps": str(self.step),
            "kizy.rank": str(self.params["rank"]),
            "kizy.alpha": str(self.params["alpha"]),
        }
        stored = []
        for data in (
            lora_files.diffusers_lora_bytes(self.family, state, adapter_config, metadata),
            lora_files.kohya_lora_bytes(
                self.family, state, alpha=float(self.params["alpha"]), metadata=metadata
            ),
        ):
            digest = hashlib.sha256(data).hexdigest()
            key = artifact_key(self.spec.workspace_id, digest, "safetensors")
            if not self.artifacts.exists(key):
                self.artifacts.put(key, data, "application/octet-stream")
            stored.append((key, digest, len(data)))
        (lora_key, lora_sha, lora_size), (kohya_key, kohya_sha, kohya_size) = stored
        return TrainingResult(
            lora_key=lora_key,
            lora_sha256=lora_sha,
            lora_size=lora_size,
            kohya_key=kohya_key,
            kohya_sha256=kohya_sha,
            kohya_size=kohya_size,
            steps=self.step,
            loss_history=self.loss_history,
            samples=tuple(self.samples),
            reproducibility={
                "device": str(self.device),
                "dtype": str(self.weight_dtype).replace("torch.", ""),
                "torch": torch.__version__,
                "seed": int(self.params["seed"]),
            },
        )


def _as_array(image: Image.Image) -> Any:
    import numpy as np

    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def train_lora(
    spec: TrainingSpec,
    *,
    model_path: Path,
    artifacts: ArtifactStore,
    events: TrainingEvents | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    device: str = "cpu",
) -> TrainingResult:
    """Train (or resume) the LoRA of ``spec``; raises ``JobCanceled`` when canceled."""
    return LoraTrainer(
        spec,
        model_path=model_path,
        artifacts=artifacts,
        events=events,
        is_cancelled=is_cancelled,
        device=device,
    ).run()
