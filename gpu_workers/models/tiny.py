"""Tiny, randomly-initialised models of the real architectures, for offline tests and the demo catalog.

Every code path (loading, LoRA switching, ControlNet, img2img, video, the cache) runs against the real
diffusers classes, just with a few thousand parameters instead of billions: SD 1.5, SDXL and Flux
pipelines, a ControlNet per family, LoRAs in diffusers and kohya format, and a video family.

The video family is **AnimateDiff** (``AnimateDiffPipeline``: an SD 1.5 UNet plus a ``MotionAdapter``).
It is the text-to-video model most self-hosters run (it reuses SD 1.5 checkpoints and LoRAs), it has a
video-to-video sibling that gives image-to-video by animating a still, and the motion adapter shrinks
to the same toy widths as the UNet, so a 64x64, 4-frame clip takes well under a second on a CPU.

Weights are random but deterministic: each component is built right after ``torch.manual_seed`` with a
fixed seed, so the same versions of torch/diffusers produce the same files and the same images.
Tokenizers are built in memory (a byte-level CLIP BPE and a small Unigram T5 vocabulary) because no
tokenizer files can be downloaded here. The images these models draw are noise; the point is shapes,
plumbing and determinism.

Usage: ``python -m gpu_workers.models.tiny <out_dir> [--family sd15|sdxl|flux|video|all]``. Each model
is written to ``<out_dir>/<name>`` (diffusers folders) or ``<out_dir>/<name>.safetensors`` (LoRAs), so
pointing a ``ModelStore`` at a root whose ``local/`` is ``out_dir`` makes them ``local:<name>`` refs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from gpu_workers.models.lazy import untyped

SEED = 20240601
FAMILY_CHOICES = ("sd15", "sdxl", "flux", "video")
_CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
_CLIP_MERGES = (("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r"), ("o", "n"), ("a", "t"))


def diffusers() -> Any:
    from gpu_workers.models.cache import quiet_diffusers

    quiet_diffusers()
    return untyped("diffusers")


def transformers() -> Any:
    return untyped("transformers")


def peft() -> Any:
    return untyped("peft")


def _seeded(offset: int) -> None:
    torch.manual_seed(SEED + offset)


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's reversible map of the 256 byte values onto printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> Any:  # noqa: S107 - a token, not a password
    """A byte-level BPE CLIP tokenizer built in memory (every string tokenizes; ids stay below 600)."""
    chars = _bytes_to_unicode()
    pieces = chars + [c + "</w>" for c in chars] + ["".join(m) for m in _CLIP_MERGES] + list(_CLIP_SPECIALS)
    vocab = {piece: index for index, piece in enumerate(dict.fromkeys(pieces))}
    merges = [tuple(pair) for pair in _CLIP_MERGES]  # transformers 5 wants tuples, not "a b" strings
    return transformers().CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77, pad_token=pad_token)


def t5_tokenizer() -> Any:
    """A small Unigram T5 tokenizer built in memory (Flux's second text encoder)."""

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(chr(c), -5.0) for c in range(ord("!"), ord("~") + 1)]
    pieces += [("▁" + w, -3.0) for w in ("a", "the", "of", "photo", "cat", "dog", "portrait", "city")]
    return transformers().T5Tokenizer(vocab=pieces, extra_ids=10)


def _clip_text_config(tokenizer: Any, *, projection_dim: int = 32) -> Any:

    return transformers().CLIPTextConfig(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _vae(*, latent_channels: int = 4, flux: bool = False) -> Any:
    """A 4-level VAE: the real 8x spatial factor with 8-16 channels instead of 128-512."""

    extra: dict[str, Any] = {}
    if flux:
        extra = {
            "use_quant_conv": False,
            "use_post_quant_conv": False,
            "shift_factor": 0.1159,
            "scaling_factor": 0.3611,
        }
    return diffusers().AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=64,
        **extra,
    )


def _sd_scheduler() -> Any:

    # The values shipped with stable-diffusion-v1-5, so schedulers built from this config behave alike.
    return diffusers().PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )


def _sd15_unet() -> Any:

    # SD 1.5 layout in miniature: cross-attention in the first block, one transformer per attention.
    return diffusers().UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def build_sd15(out: Path) -> Path:

    tokenizer = clip_tokenizer()
    _seeded(1)
    unet = _sd15_unet()
    _seeded(2)
    vae = _vae()
    _seeded(3)

    text_encoder = transformers().CLIPTextModel(_clip_text_config(tokenizer))
    pipe = diffusers().StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save_pipeline(pipe, out / "sd15")


def build_sdxl(out: Path) -> Path:

    tokenizer = clip_tokenizer()
    tokenizer_2 = clip_tokenizer(pad_token="!")  # noqa: S106 - SDXL's second tokenizer pads with '!'
    _seeded(11)
    # SDXL layout in miniature: no attention in the first block, stacked transformers, text_time embeds.
    unet = diffusers().UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=8,
    )
    _seeded(12)
    vae = _vae()
    _seeded(13)
    text_encoder = transformers().CLIPTextModel(_clip_text_config(tokenizer))
    _seeded(14)
    text_encoder_2 = transformers().CLIPTextModelWithProjection(_clip_text_config(tokenizer_2))
    scheduler = diffusers().EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipe = diffusers().StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    return _save_pipeline(pipe, out / "sdxl")


def _flux_transformer_kwargs() -> dict[str, Any]:
    return {
        "patch_size": 1,
        "in_channels": 64,
        "num_layers": 1,
        "num_single_layers": 1,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "joint_attention_dim": 32,
        "pooled_projection_dim": 32,
        "guidance_embeds": True,
        "axes_dims_rope": (4, 4, 8),
    }


def build_flux(out: Path) -> Path:

    tokenizer = clip_tokenizer()
    tokenizer_2 = t5_tokenizer()
    _seeded(21)
    transformer = diffusers().FluxTransformer2DModel(**_flux_transformer_kwargs())
    _seeded(22)
    vae = _vae(latent_channels=16, flux=True)
    _seeded(23)
    text_encoder = transformers().CLIPTextModel(_clip_text_config(tokenizer))
    _seeded(24)
    t5_config = transformers().T5Config(
        vocab_size=len(tokenizer_2),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
        pad_token_id=tokenizer_2.pad_token_id,
        eos_token_id=tokenizer_2.eos_token_id,
    )
    text_encoder_2 = transformers().T5EncoderModel(t5_config)
    scheduler = diffusers().FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
    pipe = diffusers().FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    return _save_pipeline(pipe, out / "flux")


def build_video(out: Path) -> Path:

    tokenizer = clip_tokenizer()
    _seeded(31)
    unet = _sd15_unet()
    _seeded(32)
    adapter = diffusers().MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=2,
        motion_norm_num_groups=8,
        motion_num_attention_heads=4,
        motion_max_seq_length=32,
    )
    _nonzero_(adapter, seed_offset=33)  # motion modules start as the identity; make them move
    _seeded(34)
    vae = _vae()
    _seeded(35)
    text_encoder = transformers().CLIPTextModel(_clip_text_config(tokenizer))
    scheduler = diffusers().DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        clip_sample=False,
        timestep_spacing="linspace",
        steps_offset=1,
    )
    pipe = diffusers().AnimateDiffPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=scheduler,
    )
    return _save_pipeline(pipe, out / "video")


def _nonzero_(module: torch.nn.Module, *, seed_offset: int, scale: float = 0.05, only: str = "") -> None:
    """Give zero-initialised parameters small random values.

    ControlNet output convolutions, motion-module projections and LoRA up-matrices start at zero so
    that training begins from the base model; untrained, they would make every test of "X changes the
    output" pass vacuously or fail. A tiny model has no training, so we perturb them deterministically.
    """
    generator = torch.Generator().manual_seed(SEED + seed_offset)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if only in name and param.numel() and not param.detach().abs().any():
                param.copy_(torch.randn(param.shape, generator=generator) * scale)


def build_controlnet(out: Path, family: str) -> Path:
    """A ControlNet matching the tiny base of ``family`` (built from that base's own config)."""
    if family == "flux":
        _seeded(41)
        flux_controlnet = diffusers().FluxControlNetModel(**_flux_transformer_kwargs())
        _nonzero_(flux_controlnet, seed_offset=42)
        return _save_model(flux_controlnet, out / "flux-controlnet")

    unet = diffusers().UNet2DConditionModel.from_pretrained(out / family / "unet")
    _seeded(43 if family == "sd15" else 44)
    controlnet = diffusers().ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=(8, 8, 16, 16), load_weights_from_unet=True
    )
    _nonzero_(controlnet, seed_offset=45)
    return _save_model(controlnet, out / f"{family}-controlnet")


_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_lora(out: Path, family: str) -> list[Path]:
    """A rank-4 LoRA on the attention projections; SD 1.5 also gets the same weights in kohya format."""

    class_name = {
        "sd15": "StableDiffusionPipeline",
        "sdxl": "StableDiffusionXLPipeline",
        "flux": "FluxPipeline",
    }
    pipeline_cls = getattr(diffusers(), class_name[family])
    denoiser_name = "transformer" if family == "flux" else "unet"
    pipe = pipeline_cls.from_pretrained(out / family, use_safetensors=True)
    denoiser = getattr(pipe, denoiser_name)
    _seeded(51)
    denoiser.add_adapter(
        peft().LoraConfig(r=4, lora_alpha=4, target_modules=_LORA_TARGETS, init_lora_weights=True)
    )
    _nonzero_(denoiser, seed_offset=52, scale=0.2, only="lora_B")
    state = peft().get_peft_model_state_dict(denoiser)
    target = out / f"{family}-lora.safetensors"
    pipeline_cls.save_lora_weights(
        out, weight_name=target.name, safe_serialization=True, **{f"{denoiser_name}_lora_layers": state}
    )
    written = [target]
    if family == "sd15":
        written.append(_save_kohya(state, out / "sd15-lora-kohya.safetensors"))
    return written


def _save_kohya(peft_state: dict[str, torch.Tensor], path: Path) -> Path:
    """Rewrite a peft UNet LoRA in kohya/sd-scripts naming (how most CivitAI LoRAs are published)."""
    kohya: dict[str, torch.Tensor] = {}
    for key, tensor in peft_state.items():
        module, _, kind = key.rpartition(".lora_")
        kohya_module = "lora_unet_" + module.replace(".", "_")
        suffix = "lora_down.weight" if kind.startswith("A") else "lora_up.weight"
        kohya[f"{kohya_module}.{suffix}"] = tensor.contiguous()
        if kind.startswith("A"):
            kohya[f"{kohya_module}.alpha"] = torch.tensor(float(tensor.shape[0]))
    # One metadata key only: safetensors writes metadata in hash-map order, which would make the
    # file's bytes differ from run to run.
    save_file(kohya, str(path), metadata={"ss_base_model_version": "sd_v1"})
    return path


def _save_pipeline(pipe: Any, path: Path) -> Path:
    pipe.save_pretrained(path, safe_serialization=True)
    return path


def _save_model(model: Any, path: Path) -> Path:
    model.save_pretrained(path, safe_serialization=True)
    return path


def _builders(family: str, out: Path) -> list[Callable[[], list[Path]]]:
    if family == "video":
        return [lambda: [build_video(out)]]
    base = {"sd15": build_sd15, "sdxl": build_sdxl, "flux": build_flux}[family]
    return [lambda: [base(out)], lambda: [build_controlnet(out, family)], lambda: build_lora(out, family)]


def generate(out_dir: str | Path, families: tuple[str, ...] = FAMILY_CHOICES) -> dict[str, str]:
    """Write the tiny models of ``families`` under ``out_dir``; return {name: path}.

    ``manifest.json`` lists them with paths relative to ``out_dir``, so it is the same on every run.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, str] = {}
    for family in families:
        if family not in FAMILY_CHOICES:
            raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILY_CHOICES)}")
        for build in _builders(family, out):
            for path in build():
                manifest[path.name.removesuffix(".safetensors")] = path.relative_to(out).as_posix()
    manifest_path = out / "manifest.json"
    existing = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest_path.write_text(json.dumps({**existing, **manifest}, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_workers.models.tiny",
        description="Write tiny random SD 1.5 / SDXL / Flux / AnimateDiff models for offline use.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--family", choices=(*FAMILY_CHOICES, "all"), default="all")
    args = parser.parse_args(argv)
    families = FAMILY_CHOICES if args.family == "all" else (args.family,)
    for name, path in generate(args.out_dir, families).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
