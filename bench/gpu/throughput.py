"""For a lent GPU (H200): seconds per image of SDXL- and Flux-sized pipelines with random weights at
1024², bf16, SDPA, with and without torch.compile, against the FLOP floor of the denoiser.

Random weights draw noise, but the arithmetic is the real architectures' (same layer sizes), so
timings match real checkpoints. Nothing is downloaded: configs are the published ones, built here.

Usage (on the GPU machine): python bench/gpu/throughput.py [--steps 30] [--compile]
Prints one line per model: s/image, achieved TFLOP/s, and the ratio to the card's dense bf16 peak.
"""
from __future__ import annotations

import argparse
import sys
import time

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def sdxl_unet(torch, diffusers):  # type: ignore[no-untyped-def]
    return diffusers.UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                               "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )


def flux_transformer(torch, diffusers):  # type: ignore[no-untyped-def]
    return diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    )


def time_sdxl(torch, model, steps: int) -> float:  # type: ignore[no-untyped-def]
    latents = torch.randn(2, 4, 128, 128, device="cuda", dtype=torch.bfloat16)  # CFG batch of 2
    text = torch.randn(2, 77, 2048, device="cuda", dtype=torch.bfloat16)
    added = {"text_embeds": torch.randn(2, 1280, device="cuda", dtype=torch.bfloat16),
             "time_ids": torch.randn(2, 6, device="cuda", dtype=torch.bfloat16)}
    t = torch.tensor([500], device="cuda")

    def run() -> None:
        for _ in range(steps):
            model(latents, t, encoder_hidden_states=text, added_cond_kwargs=added)

    return _timed(torch, run)


def time_flux(torch, model, steps: int) -> float:  # type: ignore[no-untyped-def]
    tokens = (1024 // 16) ** 2
    hidden = torch.randn(1, tokens, 64, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(1, 512, 4096, device="cuda", dtype=torch.bfloat16)
    pooled = torch.randn(1, 768, device="cuda", dtype=torch.bfloat16)
    img_ids = torch.zeros(tokens, 3, device="cuda")
    txt_ids = torch.zeros(512, 3, device="cuda")
    t = torch.tensor([0.5], device="cuda", dtype=torch.bfloat16)
    guidance = torch.tensor([3.5], device="cuda", dtype=torch.bfloat16)

    def run() -> None:
        for _ in range(steps):
            model(hidden_states=hidden, encoder_hidden_states=text, pooled_projections=pooled, timestep=t,
                  img_ids=img_ids, txt_ids=txt_ids, guidance=guidance)

    return _timed(torch, run)


def _timed(torch, run) -> float:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        run()  # warm-up (and compilation)
        torch.cuda.synchronize()
        began = time.perf_counter()
        run()
        torch.cuda.synchronize()
    return time.perf_counter() - began


def flops_per_step(torch, model, timer) -> float:  # type: ignore[no-untyped-def]
    """FLOPs of one denoiser step (the timer runs a warm-up and a timed pass: two steps)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        timer(torch, model, 1)
    return float(counter.get_total_flops()) / 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    import diffusers
    import torch

    if not torch.cuda.is_available():
        print("No CUDA device: this benchmark is for a lent GPU.")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    for label, build, timer in (("SDXL UNet", sdxl_unet, time_sdxl), ("Flux transformer", flux_transformer,
                                                                        time_flux)):
        model = build(torch, diffusers).to("cuda", torch.bfloat16).eval()
        if args.compile:
            model = torch.compile(model, mode="max-autotune-no-cudagraphs")
        seconds = timer(torch, model, args.steps)
        flops = flops_per_step(torch, model, timer) * args.steps
        achieved = flops / seconds / 1e12
        floor = flops / (peak * 1e12) if peak else float("nan")
        print(f"{label} 1024², {args.steps} steps, bf16{' + compile' if args.compile else ''} on {name}: "
              f"{seconds:.2f} s/image, {achieved:.0f} TFLOP/s, FLOP floor {floor:.2f} s "
              f"({seconds / floor:.1f}× the floor)" if peak else f"{seconds:.2f} s/image")
        del model
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
