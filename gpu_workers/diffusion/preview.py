"""Cheap step previews: a fixed linear map from latent channels to RGB, no VAE decode.

Decoding with the VAE every few steps would cost as much as several denoising steps; a 4x3 (or 16x3)
matrix multiply costs nothing and shows composition and colour well enough for a progress view.
The factors are the widely used approximations fitted for each latent space (as in ComfyUI's and
A1111's "approx" previewers). For the tiny random models they show noise, which is fine: the point
is that the preview path runs.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

# (rows = latent channels, columns = R, G, B), bias per RGB channel.
_SD15 = (
    (
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    (0.0, 0.0, 0.0),
)
_SDXL = (
    (
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    (0.1084, -0.0175, -0.0011),
)
_FLUX = (
    (
        (-0.0346, 0.0244, 0.0681),
        (0.0034, 0.0210, 0.0687),
        (0.0275, -0.0668, -0.0433),
        (-0.0174, 0.0160, 0.0617),
        (0.0859, 0.0721, 0.0329),
        (0.0004, 0.0383, 0.0115),
        (0.0405, 0.0861, 0.0915),
        (-0.0236, -0.0185, -0.0259),
        (-0.0245, 0.0250, 0.1180),
        (0.1008, 0.0755, -0.0421),
        (-0.0515, 0.0201, 0.0011),
        (0.0428, -0.0012, -0.0036),
        (0.0817, 0.0765, 0.0749),
        (-0.1264, -0.0522, -0.1103),
        (-0.0280, -0.0881, -0.0499),
        (-0.1262, -0.0982, -0.0778),
    ),
    (-0.0329, -0.0718, -0.0851),
)
LATENT_RGB: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, float, float]]] = {
    "sd15": _SD15,
    "video": _SD15,
    "sdxl": _SDXL,
    "flux": _FLUX,
}
PREVIEW_SIDE = 256


def unpack_flux_latents(latents: Any, height: int, width: int, vae_scale_factor: int = 8) -> Any:
    """Flux keeps latents as a sequence of 2x2 patches, (B, H/2*W/2, C*4); return (B, C, H, W)."""
    batch, _tokens, packed = latents.shape
    rows = 2 * (height // (vae_scale_factor * 2))
    cols = 2 * (width // (vae_scale_factor * 2))
    latents = latents.view(batch, rows // 2, cols // 2, packed // 4, 2, 2)
    return latents.permute(0, 3, 1, 4, 2, 5).reshape(batch, packed // 4, rows, cols)


def latent_preview(latents: Any, family: str, *, height: int, width: int) -> Image.Image | None:
    """An RGB preview of the first item of ``latents`` (image (B,C,H,W), video (B,C,F,H,W), or Flux
    packed), sized to the output's aspect ratio with its long side at most 256 pixels."""
    import torch

    factors = LATENT_RGB.get(family)
    if factors is None:
        return None
    if family == "flux" and latents.ndim == 3:
        latents = unpack_flux_latents(latents, height, width)
    sample = latents[0].detach().float().cpu()
    if sample.ndim == 4:  # video: channels, frames, h, w -> first frame
        sample = sample[:, 0]
    matrix = torch.tensor(factors[0])
    if sample.shape[0] != matrix.shape[0]:
        return None
    rgb = torch.einsum("chw,cr->rhw", sample, matrix) + torch.tensor(factors[1])[:, None, None]
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels, "RGB")
    scale = PREVIEW_SIDE / max(width, height)
    size = (max(1, round(width * min(scale, 1.0))), max(1, round(height * min(scale, 1.0))))
    return image.resize(size, Image.Resampling.BILINEAR)
