"""Image utility nodes that need only Pillow."""

from __future__ import annotations

from typing import ClassVar, Literal

from PIL import Image
from pydantic import BaseModel, Field

from gpu_workers.sdk import ImageRef, Node, NodeContext

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class Resize(Node):
    """Resize to an exact size: the plain step users reach for before or after generation."""

    type: ClassVar[str] = "resize"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Resize"
    description: ClassVar[str] = "Resize an image to the given width and height."

    class Inputs(BaseModel):
        image: ImageRef = Field(description="The image to resize.")
        width: int = Field(ge=8, le=8192, description="New width in pixels.")
        height: int = Field(ge=8, le=8192, description="New height in pixels.")
        method: Literal["nearest", "bilinear", "bicubic", "lanczos"] = Field(
            default="lanczos", description="Resampling filter; lanczos keeps the most detail."
        )

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The resized image.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        image = ctx.load_image(inputs.image)
        resized = image.resize((inputs.width, inputs.height), _RESAMPLING[inputs.method])
        return self.Outputs(image=ctx.save_image(resized))


NODES: list[type[Node]] = [Resize]
