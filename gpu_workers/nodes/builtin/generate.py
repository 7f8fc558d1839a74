"""Text-to-image and image-to-image with SD 1.5, SDXL and Flux models."""

from __future__ import annotations

from typing import ClassVar

from PIL import Image
from pydantic import BaseModel, Field

from gpu_workers.diffusion.ports import OptionalSizeInputs, PromptInputs, SizeInputs
from gpu_workers.diffusion.schedulers import make_scheduler
from gpu_workers.diffusion.steps import (
    IMAGE_FAMILIES,
    StepReporter,
    check_size,
    fit_size,
    generator,
    prompt_kwargs,
    require_family,
)
from gpu_workers.diffusion.transient import retries_transient_failures
from gpu_workers.sdk import ImageRef, Node, NodeContext, NodeError


class TextToImage(Node):
    """The basic generation step; the model port decides the family and the LoRAs."""

    type: ClassVar[str] = "text_to_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "generate"
    title: ClassVar[str] = "Text to image"
    description: ClassVar[str] = "Generate an image from a prompt with an SD 1.5, SDXL or Flux model."

    class Inputs(SizeInputs, PromptInputs):
        pass

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The generated image.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec = inputs.model
        require_family(ctx, spec, IMAGE_FAMILIES, "Text to image", "Use text_to_video for video models.")
        check_size(ctx, spec.family, inputs.width, inputs.height)
        pipe = ctx.models.pipeline(spec, "txt2img")
        pipe.scheduler = make_scheduler(inputs.scheduler, pipe.scheduler, spec.family)
        result = pipe(
            **prompt_kwargs(ctx, spec.family, inputs.prompt, inputs.negative_prompt, inputs.guidance),
            width=inputs.width,
            height=inputs.height,
            num_inference_steps=inputs.steps,
            generator=generator(inputs.seed),
            output_type="pil",
            callback_on_step_end=StepReporter(
                ctx, spec.family, steps=inputs.steps, width=inputs.width, height=inputs.height
            ),
        )
        return self.Outputs(image=ctx.save_image(result.images[0]))


class ImageToImage(Node):
    """Re-draw an image: ``strength`` is how much of it is re-noised (0 keeps it, 1 ignores it)."""

    type: ClassVar[str] = "image_to_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "generate"
    title: ClassVar[str] = "Image to image"
    description: ClassVar[str] = (
        "Re-draw an image guided by a prompt; strength sets how far the result may move from the input."
    )

    class Inputs(OptionalSizeInputs, PromptInputs):
        image: ImageRef = Field(description="The image to start from.")
        strength: float = Field(
            default=0.6, gt=0.0, le=1.0, description="How much to change: 0.2 touches up, 0.9 nearly redraws."
        )

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The re-drawn image.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec = inputs.model
        require_family(ctx, spec, IMAGE_FAMILIES, "Image to image", "Use image_to_video for video models.")
        source = ctx.load_image(inputs.image).convert("RGB")
        width, height = fit_size(spec.family, inputs.width or source.width, inputs.height or source.height)
        check_size(ctx, spec.family, width, height)
        image = redraw(
            ctx,
            source.resize((width, height), Image.Resampling.LANCZOS)
            if source.size != (width, height)
            else source,
            inputs,
            strength=inputs.strength,
            seed=inputs.seed,
        )
        return self.Outputs(image=ctx.save_image(image))


def redraw(
    ctx: NodeContext, image: Image.Image, inputs: PromptInputs, *, strength: float, seed: int
) -> Image.Image:
    """One img2img pass at ``image``'s size (shared with face detailing)."""
    spec = inputs.model
    if int(inputs.steps * strength) < 1:
        raise NodeError(ctx.node_id, f"{inputs.steps} steps at strength {strength} run no step; raise either")
    pipe = ctx.models.pipeline(spec, "img2img")
    pipe.scheduler = make_scheduler(inputs.scheduler, pipe.scheduler, spec.family)
    # Flux img2img defaults to 1024x1024 whatever the input size, so the size is always explicit.
    size = {"width": image.width, "height": image.height} if spec.family == "flux" else {}
    result = pipe(
        **prompt_kwargs(ctx, spec.family, inputs.prompt, inputs.negative_prompt, inputs.guidance),
        image=image,
        strength=strength,
        num_inference_steps=inputs.steps,
        generator=generator(seed),
        output_type="pil",
        callback_on_step_end=StepReporter(
            ctx, spec.family, steps=inputs.steps, width=image.width, height=image.height
        ),
        **size,
    )
    output: Image.Image = result.images[0]
    return output


NODES: list[type[Node]] = [TextToImage, ImageToImage]
