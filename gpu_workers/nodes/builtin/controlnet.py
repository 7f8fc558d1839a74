"""Generation steered by a guide image through a ControlNet (edges or a depth-like map)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from gpu_workers.diffusion.ports import PromptInputs, SizeInputs
from gpu_workers.diffusion.preprocess import Preprocessor, control_map
from gpu_workers.diffusion.schedulers import make_scheduler
from gpu_workers.diffusion.steps import (
    IMAGE_FAMILIES,
    StepReporter,
    check_size,
    generator,
    prompt_kwargs,
    require_family,
)
from gpu_workers.diffusion.transient import retries_transient_failures
from gpu_workers.sdk import ImageRef, Node, NodeContext


class ControlNetGenerate(Node):
    type: ClassVar[str] = "controlnet"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "generate"
    title: ClassVar[str] = "Generate with ControlNet"
    description: ClassVar[str] = (
        "Generate an image that follows the layout of a guide image. 'canny' traces its edges with OpenCV; "
        "'depth' uses a cheap blurred-brightness stand-in for a depth map (not a real depth estimate); "
        "'none' uses the guide image as the control map as it is. The ControlNet must match the model's "
        "family (SD 1.5, SDXL or Flux)."
    )

    class Inputs(SizeInputs, PromptInputs):
        guide_image: ImageRef = Field(description="The image whose layout to follow.")
        controlnet: str = Field(
            min_length=1,
            max_length=500,
            description="Reference of the ControlNet model.",
            json_schema_extra={"kizy_reference": "asset"},
        )
        preprocessor: Preprocessor = Field(
            default="canny", description="How to turn the guide into a control map."
        )
        strength: float = Field(default=1.0, ge=0.0, le=2.0, description="How strictly to follow the guide.")

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The generated image.")
        control: ImageRef = Field(description="The control map the ControlNet saw.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec = inputs.model
        require_family(ctx, spec, IMAGE_FAMILIES, "ControlNet generation", "")
        check_size(ctx, spec.family, inputs.width, inputs.height)
        control = control_map(
            ctx.load_image(inputs.guide_image), inputs.preprocessor, inputs.width, inputs.height
        )
        pipe = ctx.models.pipeline(spec, f"controlnet:{inputs.controlnet}")
        pipe.scheduler = make_scheduler(inputs.scheduler, pipe.scheduler, spec.family)
        control_arg = {"control_image": control} if spec.family == "flux" else {"image": control}
        result = pipe(
            **prompt_kwargs(ctx, spec.family, inputs.prompt, inputs.negative_prompt, inputs.guidance),
            **control_arg,
            controlnet_conditioning_scale=inputs.strength,
            width=inputs.width,
            height=inputs.height,
            num_inference_steps=inputs.steps,
            generator=generator(inputs.seed),
            output_type="pil",
            callback_on_step_end=StepReporter(
                ctx, spec.family, steps=inputs.steps, width=inputs.width, height=inputs.height
            ),
        )
        return self.Outputs(image=ctx.save_image(result.images[0]), control=ctx.save_image(control))


NODES: list[type[Node]] = [ControlNetGenerate]
