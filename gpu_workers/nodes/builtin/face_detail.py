"""Face detailing: faces are small in a full-body image, so the model drew them with few pixels.

Each detected face is cropped with some context, enlarged to the model's working resolution,
re-drawn with image-to-image at moderate strength, shrunk back and blended in through a feathered
mask. Only pixels inside each face's crop can change; with no face the input is returned as is.
"""

from __future__ import annotations

from typing import ClassVar

from PIL import Image
from pydantic import BaseModel, Field

from gpu_workers.diffusion.faces import crop_box, detect_faces, feather_mask
from gpu_workers.diffusion.ports import PromptInputs
from gpu_workers.diffusion.steps import IMAGE_FAMILIES, fit_size, require_family
from gpu_workers.diffusion.transient import retries_transient_failures
from gpu_workers.nodes.builtin.generate import redraw
from gpu_workers.sdk import ImageRef, Node, NodeContext


class FaceDetail(Node):
    type: ClassVar[str] = "face_detail"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Face detailer"
    description: ClassVar[str] = (
        "Find frontal faces (OpenCV) and re-draw each at a higher resolution, then blend it back; "
        "the rest of the image is left untouched, and an image without faces comes back unchanged."
    )

    class Inputs(PromptInputs):
        image: ImageRef = Field(description="The image whose faces to refine.")
        prompt: str = Field(
            default="a detailed face", max_length=4000, description="How the faces should look."
        )
        strength: float = Field(default=0.4, gt=0.0, le=1.0, description="How much each face may change.")
        detail_size: int = Field(
            default=512,
            ge=64,
            le=2048,
            multiple_of=8,
            description="Side of the square each face is re-drawn at.",
        )
        padding: float = Field(
            default=0.5, ge=0.0, le=2.0, description="Context around each face, in face sizes."
        )
        max_faces: int = Field(
            default=4, ge=1, le=16, description="Refine at most this many (largest first)."
        )

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The image with refined faces.")
        faces: int = Field(description="How many faces were refined.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec = inputs.model
        require_family(ctx, spec, IMAGE_FAMILIES, "Face detailing", "")
        source = ctx.load_image(inputs.image)
        faces = detect_faces(source)[: inputs.max_faces]
        if not faces:
            return self.Outputs(image=inputs.image, faces=0)
        ctx.log(f"refining {len(faces)} face(s)")
        result = source.convert("RGB")
        side = fit_size(spec.family, inputs.detail_size, inputs.detail_size)
        for index, face in enumerate(faces):
            ctx.check_cancelled()
            crop = crop_box(face, result.size, inputs.padding)
            region = result.crop((crop.x, crop.y, crop.right, crop.bottom))
            enlarged = region.resize(side, Image.Resampling.LANCZOS)
            redrawn = redraw(
                ctx, enlarged, inputs, strength=inputs.strength, seed=(inputs.seed + index) % 2**32
            )
            back = redrawn.resize(region.size, Image.Resampling.LANCZOS)
            result.paste(back, (crop.x, crop.y), feather_mask(crop, face, feather=max(2, crop.width // 8)))
        if "A" in source.getbands():
            result.putalpha(source.getchannel("A"))
        return self.Outputs(image=ctx.save_image(result), faces=len(faces))


NODES: list[type[Node]] = [FaceDetail]
