"""For a lent GPU (H200): seconds per image of full SDXL- and Flux-sized pipelines with random weights at
1024², bf16, SDPA, eager and torch.compile'd in one run, against the FLOP floor of the card.

The pipelines are the real ones (``StableDiffusionXLPipeline``: two CLIP text encoders, the UNet, the
VAE decode; ``FluxPipeline``: CLIP-L and T5-XXL, the 12 B transformer, the 16-channel VAE), built from
the published layer sizes with random weights directly on the GPU. They draw noise, but the arithmetic
is that of real checkpoints, so the timings are too. Nothing is downloaded (the tokenizers are built in
memory, as for the tiny models).

FLOPs are counted once per model on the **eager** pipeline (``FlopCounterMode`` does not see inside a
compiled graph) as fixed work (text encoders, VAE) plus per-step work, from a 1-step and a 2-step
call. The floor is those FLOPs at the card's dense bf16 peak; a card the table does not know, or a
count of zero, prints "no floor" instead of dividing by it.

Usage on the GPU machine: python bench/gpu/throughput.py [--steps 30] [--models sdxl,flux]
[--compile-mode default|max-autotune-no-cudagraphs] [--no-compile]
``--smoke`` runs the same code on the tiny models at 64² (CPU is fine) to check the script itself.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}
PROMPT = "a lighthouse on a cliff at dusk, volumetric light, highly detailed"


class OnDevice:
    """Builds modules straight on ``device`` in ``dtype`` (random initialisation of 17 B parameters on a
    CPU would take longer than the benchmark); schedulers and tokenizers stay outside, in float32."""

    def __init__(self, device: str, dtype: Any) -> None:
        self.device, self.dtype = device, dtype

    def __call__(self, build: Any) -> Any:
        import torch

        default = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            with torch.device(self.device):
                return build()
        finally:
            torch.set_default_dtype(default)


def _clip_config(transformers: Any, tokenizer: Any, *, hidden: int, layers: int, heads: int, ffn: int,
                 projection: int) -> Any:
    return transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=ffn, num_attention_heads=heads,
        num_hidden_layers=layers, max_position_embeddings=77, projection_dim=projection, hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _vae(diffusers: Any, *, latent_channels: int, scaling: float, shift: float | None) -> Any:
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), norm_num_groups=32, sample_size=1024,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=scaling, shift_factor=shift, force_upcast=False,
        use_quant_conv=shift is None, use_post_quant_conv=shift is None,
    )


def full_sdxl(diffusers: Any, transformers: Any, tiny: Any, on: OnDevice) -> Any:
    """SDXL base 1.0's published sizes: CLIP ViT-L + OpenCLIP bigG, the 2.6 B UNet, the SDXL VAE."""
    tokenizer, tokenizer_2 = tiny.clip_tokenizer(), tiny.clip_tokenizer(pad_token="!")  # noqa: S106
    unet = on(lambda: diffusers.UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    ))
    clip_l = _clip_config(transformers, tokenizer, hidden=768, layers=12, heads=12, ffn=3072, projection=768)
    clip_g = _clip_config(transformers, tokenizer_2, hidden=1280, layers=32, heads=20, ffn=5120, projection=1280)
    return diffusers.StableDiffusionXLPipeline(
        vae=on(lambda: _vae(diffusers, latent_channels=4, scaling=0.13025, shift=None)),
        text_encoder=on(lambda: transformers.CLIPTextModel(clip_l)),
        text_encoder_2=on(lambda: transformers.CLIPTextModelWithProjection(clip_g)),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
        scheduler=diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                                   beta_schedule="scaled_linear", steps_offset=1,
                                                   timestep_spacing="leading"),
    )


def full_flux(diffusers: Any, transformers: Any, tiny: Any, on: OnDevice) -> Any:
    """FLUX.1-dev's published sizes: CLIP ViT-L, T5-XXL encoder, the 12 B transformer, the 16-channel VAE."""
    tokenizer, tokenizer_2 = tiny.clip_tokenizer(), tiny.t5_tokenizer()
    t5 = transformers.T5Config(
        vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
        feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, decoder_start_token_id=0,
        pad_token_id=tokenizer_2.pad_token_id, eos_token_id=tokenizer_2.eos_token_id,
    )
    clip_l = _clip_config(transformers, tokenizer, hidden=768, layers=12, heads=12, ffn=3072, projection=768)
    return diffusers.FluxPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=on(lambda: _vae(diffusers, latent_channels=16, scaling=0.3611, shift=0.1159)),
        text_encoder=on(lambda: transformers.CLIPTextModel(clip_l)),
        tokenizer=tokenizer, text_encoder_2=on(lambda: transformers.T5EncoderModel(t5)), tokenizer_2=tokenizer_2,
        transformer=on(lambda: diffusers.FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        )),
    )


def tiny_pipeline(family: str, diffusers: Any, tiny: Any) -> Any:
    out = Path(tempfile.mkdtemp(prefix="kizy-throughput-"))
    builder = {"sdxl": tiny.build_sdxl, "flux": tiny.build_flux}[family]
    cls = {"sdxl": diffusers.StableDiffusionXLPipeline, "flux": diffusers.FluxPipeline}[family]
    return cls.from_pretrained(builder(out), use_safetensors=True)


def denoiser_name(family: str) -> str:
    return "transformer" if family == "flux" else "unet"


def call(pipe: Any, family: str, *, steps: int, size: int) -> Any:
    import torch

    kwargs: dict[str, Any] = {"prompt": PROMPT, "width": size, "height": size, "num_inference_steps": steps,
                              "generator": torch.Generator().manual_seed(0), "output_type": "pil"}
    kwargs.update({"guidance_scale": 3.5, "max_sequence_length": 512} if family == "flux" else
                  {"guidance_scale": 5.0, "negative_prompt": "blurry"})
    return pipe(**kwargs)


def seconds_per_image(pipe: Any, family: str, *, steps: int, size: int, device: str) -> float:
    import torch

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        call(pipe, family, steps=steps, size=size)  # warm-up (and compilation)
        sync()
        began = time.perf_counter()
        call(pipe, family, steps=steps, size=size)
        sync()
    return time.perf_counter() - began


def pipeline_flops(pipe: Any, family: str, *, steps: int, size: int) -> float:
    """FLOPs of a ``steps``-step image on the eager pipeline: fixed + steps × per-step, from 1 and 2 steps."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counts = []
    for n in (1, 2):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            call(pipe, family, steps=n, size=size)
        counts.append(float(counter.get_total_flops()))
    per_step = counts[1] - counts[0]
    return counts[0] - per_step + steps * per_step


def report(label: str, seconds: float, flops: float, peak: float | None, steps: int) -> str:
    line = f"  {label:<22} {seconds:7.2f} s/image"
    if not flops:
        return line + "   (no FLOP count: no floor)"
    achieved = flops / seconds / 1e12
    line += f"   {achieved:6.0f} TFLOP/s   {flops / 1e12 / steps:.1f} TFLOP per step"
    if not peak:
        return line + "   (unknown card: no floor)"
    floor = flops / (peak * 1e12)
    return line + f"   floor {floor:.2f} s   {seconds / floor:.1f}x the floor"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models", default="sdxl,flux")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode for the denoiser (max-autotune-no-cudagraphs tunes longer)")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--smoke", action="store_true", help="tiny models at 64² (any device): checks the script")
    args = parser.parse_args()

    import diffusers
    import torch
    import transformers

    from gpu_workers.models import tiny

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        print("No CUDA device: this benchmark is for a lent GPU (use --smoke to check the script on a CPU).")
        return 1
    size = 64 if args.smoke else 1024
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    print(f"{name}, {size}², {args.steps} steps, {str(dtype).removeprefix('torch.')}, SDPA"
          f"{'' if args.no_compile else f', torch.compile mode={args.compile_mode}'}"
          f"{' (smoke: tiny models)' if args.smoke else ''}")
    for family in [m.strip() for m in args.models.split(",") if m.strip()]:
        began = time.perf_counter()
        if args.smoke:
            pipe = tiny_pipeline(family, diffusers, tiny).to(device, dtype)
        else:
            build = {"sdxl": full_sdxl, "flux": full_flux}[family]
            pipe = build(diffusers, transformers, tiny, OnDevice(device, dtype)).to(device, dtype)
        pipe.set_progress_bar_config(disable=True)
        params = sum(p.numel() for p in getattr(pipe, denoiser_name(family)).parameters())
        print(f"{family}: pipeline built in {time.perf_counter() - began:.0f} s "
              f"(denoiser {params / 1e9:.2f} B parameters)")
        flops = pipeline_flops(pipe, family, steps=args.steps, size=size)
        print(report("eager", seconds_per_image(pipe, family, steps=args.steps, size=size, device=device),
                     flops, peak, args.steps), flush=True)
        if not args.no_compile:
            denoiser = getattr(pipe, denoiser_name(family))
            setattr(pipe, denoiser_name(family), torch.compile(denoiser, mode=args.compile_mode))
            compile_began = time.perf_counter()
            seconds = seconds_per_image(pipe, family, steps=args.steps, size=size, device=device)
            print(report("compiled denoiser", seconds, flops, peak, args.steps)
                  + f"   (warm-up with compilation {time.perf_counter() - compile_began - seconds:.0f} s)",
                  flush=True)
        del pipe
        if device == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
