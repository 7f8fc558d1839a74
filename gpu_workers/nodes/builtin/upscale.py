"""Super-resolution with ESRGAN-family networks (Real-ESRGAN x4plus, Compact...), tiled.

Large inputs are cut into tiles with an overlapping margin: each tile is upscaled with its margin
and only its centre is kept, so memory stays bounded and seams do not show. A network's native
scale is applied as often as needed and the result resized to the exact requested factor (the
x4 network at x2 is what the ncnn release itself does).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from gpu_workers.diffusion.transient import retries_transient_failures
from gpu_workers.sdk import ImageRef, ModelSpec, Node, NodeContext, NodeError

DEFAULT_UPSCALER = "local:realesrgan-x4plus"


class Upscale(Node):
    type: ClassVar[str] = "upscale"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Upscale ×2 / ×4"
    description: ClassVar[str] = (
        "Enlarge an image two or four times with a super-resolution network (Real-ESRGAN and other "
        "ESRGAN-family .safetensors weights), sharper than plain resizing."
    )

    class Inputs(BaseModel):
        image: ImageRef = Field(description="The image to enlarge.")
        scale: int = Field(default=4, ge=2, le=4, multiple_of=2, description="Enlargement factor: 2 or 4.")
        upscaler: str = Field(
            default=DEFAULT_UPSCALER,
            min_length=1,
            max_length=500,
            description="Reference of the upscaler weights.",
            json_schema_extra={"kizy_reference": "asset"},
        )
        tile: int = Field(
            default=256, ge=32, le=2048, description="Tile side in input pixels (lower uses less memory)."
        )

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The enlarged image.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        model = ctx.models.pipeline(ModelSpec(ref=inputs.upscaler, family="upscaler"), "upscale")
        if int(model.scale) < 2:
            raise NodeError(ctx.node_id, f"{inputs.upscaler} does not enlarge images (scale {model.scale})")
        source = ctx.load_image(inputs.image)
        alpha = source.getchannel("A") if "A" in source.getbands() else None
        image = source.convert("RGB")
        target = (source.width * inputs.scale, source.height * inputs.scale)
        while image.width < target[0]:
            image = upscale_tiled(ctx, model, image, tile=inputs.tile)
        if image.size != target:
            image = image.resize(target, Image.Resampling.LANCZOS)
        if alpha is not None:
            image.putalpha(alpha.resize(target, Image.Resampling.LANCZOS))
        return self.Outputs(image=ctx.save_image(image))


def upscale_tiled(
    ctx: NodeContext, model: Any, image: Image.Image, *, tile: int, margin: int = 16
) -> Image.Image:
    """One pass of ``model`` (a spandrel descriptor) over ``image`` in overlapping tiles."""
    import torch

    scale = int(model.scale)
    param = next(model.model.parameters())
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    height, width = pixels.shape[-2:]
    output = torch.zeros((1, 3, height * scale, width * scale))
    boxes = [(y, x) for y in range(0, height, tile) for x in range(0, width, tile)]
    for index, (y, x) in enumerate(boxes, start=1):
        ctx.check_cancelled()
        y1, x1 = min(y + tile, height), min(x + tile, width)
        top, left = max(y - margin, 0), max(x - margin, 0)
        bottom, right = min(y1 + margin, height), min(x1 + margin, width)
        piece = pixels[..., top:bottom, left:right].to(device=param.device, dtype=param.dtype)
        with torch.inference_mode():
            result = model(piece).float().cpu()
        dy, dx = (y - top) * scale, (x - left) * scale
        output[..., y * scale : y1 * scale, x * scale : x1 * scale] = result[
            ..., dy : dy + (y1 - y) * scale, dx : dx + (x1 - x) * scale
        ]
        ctx.progress(index, len(boxes))
    array = (output[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(array, "RGB")


NODES: list[type[Node]] = [Upscale]
