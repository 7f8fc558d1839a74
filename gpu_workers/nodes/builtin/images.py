"""Bringing images into a graph and marking final outputs.

Uploads arrive as artifacts in whatever format the user had (JPEG, WebP, PNG with EXIF...);
``load_image`` decodes one with a pixel cap, applies the EXIF orientation and re-encodes it as a
metadata-free PNG, so every downstream node sees the same clean format. ``save_image`` is the final
step of a graph: it re-encodes as PNG without any metadata (no EXIF/GPS, no embedded prompt or
workflow), whatever node produced the image.
"""

from __future__ import annotations

import io
from typing import ClassVar

from PIL import Image, ImageOps
from pydantic import BaseModel, Field

from gpu_workers.sdk import ImageRef, Node, NodeContext, NodeError

MAX_PIXELS = 8192 * 8192


class LoadImage(Node):
    type: ClassVar[str] = "load_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Load image"
    description: ClassVar[str] = "Use an uploaded image (PNG, JPEG or WebP) in the graph."

    class Inputs(BaseModel):
        key: str = Field(min_length=1, max_length=500, description="Storage key of the uploaded file.")

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The image as a clean PNG.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        data = ctx.load_bytes(inputs.key)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size  # read from the header, before any pixel is decoded
                if width * height > MAX_PIXELS:
                    raise NodeError(
                        ctx.node_id, f"the image is {width}x{height}; the limit is {MAX_PIXELS} pixels"
                    )
                if probe.format not in {"PNG", "JPEG", "WEBP"}:
                    raise NodeError(
                        ctx.node_id, f"{probe.format} images are not accepted; use PNG, JPEG or WebP"
                    )
                probe.load()
                image = ImageOps.exif_transpose(probe)
        except (OSError, Image.DecompressionBombError) as exc:
            raise NodeError(ctx.node_id, f"the file is not a readable image: {exc}") from exc
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        return self.Outputs(image=ctx.save_image(image.convert("RGBA" if has_alpha else "RGB")))


class SaveImage(Node):
    type: ClassVar[str] = "save_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Save image"
    description: ClassVar[str] = "Keep an image as a result of the job: a PNG with no metadata."

    class Inputs(BaseModel):
        image: ImageRef = Field(description="The image to keep.")

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The saved PNG.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        return self.Outputs(image=ctx.save_image(ctx.load_image(inputs.image)))


NODES: list[type[Node]] = [LoadImage, SaveImage]
