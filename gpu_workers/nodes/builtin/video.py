"""Short clips with AnimateDiff models (an SD 1.5 UNet plus a motion adapter), and the MP4 output.

Image-to-video animates a still: the image is repeated for every frame and re-noised by
``strength`` through AnimateDiff's video-to-video pipeline, so the motion module turns the copies
into motion while the first-frame look is kept. Generation nodes pass frames losslessly (see
``gpu_workers.diffusion.video_io``); ``save_video`` makes the playable MP4.
"""

from __future__ import annotations

from typing import ClassVar

from PIL import Image
from pydantic import BaseModel, Field

from gpu_workers.diffusion.ports import OptionalSizeInputs, PromptInputs, SizeInputs
from gpu_workers.diffusion.schedulers import make_scheduler
from gpu_workers.diffusion.steps import (
    VIDEO_FAMILIES,
    StepReporter,
    check_size,
    fit_size,
    generator,
    prompt_kwargs,
    require_family,
)
from gpu_workers.diffusion.transient import retries_transient_failures
from gpu_workers.diffusion.video_io import encode_mp4, load_frames, save_frames
from gpu_workers.sdk import ImageRef, Node, NodeContext, NodeError, VideoRef


class _ClipInputs(PromptInputs):
    frames: int = Field(
        default=16, ge=1, le=32, description="Number of frames (AnimateDiff handles up to 32)."
    )
    fps: float = Field(default=8.0, gt=0.0, le=60.0, description="Playback speed, in frames per second.")


class TextToVideo(Node):
    type: ClassVar[str] = "text_to_video"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "video"
    title: ClassVar[str] = "Text to video"
    description: ClassVar[str] = "Generate a short clip from a prompt with an AnimateDiff video model."

    class Inputs(SizeInputs, _ClipInputs):
        pass

    class Outputs(BaseModel):
        video: VideoRef = Field(description="The clip's frames (lossless); connect save_video for an MP4.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec = inputs.model
        require_family(ctx, spec, VIDEO_FAMILIES, "Text to video", "Use text_to_image for image models.")
        check_size(ctx, spec.family, inputs.width, inputs.height)
        pipe = ctx.models.pipeline(spec, "txt2video")
        pipe.scheduler = make_scheduler(inputs.scheduler, pipe.scheduler, spec.family)
        result = pipe(
            **prompt_kwargs(ctx, spec.family, inputs.prompt, inputs.negative_prompt, inputs.guidance),
            num_frames=inputs.frames,
            width=inputs.width,
            height=inputs.height,
            num_inference_steps=inputs.steps,
            generator=generator(inputs.seed),
            output_type="pil",
            callback_on_step_end=StepReporter(
                ctx, spec.family, steps=inputs.steps, width=inputs.width, height=inputs.height
            ),
        )
        return self.Outputs(video=save_frames(ctx, result.frames[0], inputs.fps))


class ImageToVideo(Node):
    type: ClassVar[str] = "image_to_video"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "video"
    title: ClassVar[str] = "Image to video"
    description: ClassVar[str] = (
        "Animate a still image into a short clip with an AnimateDiff video model; strength sets how far "
        "the frames may move away from the image."
    )

    class Inputs(OptionalSizeInputs, _ClipInputs):
        image: ImageRef = Field(description="The still to animate.")
        strength: float = Field(
            default=0.7, gt=0.0, le=1.0, description="How much motion may alter the image."
        )

    class Outputs(BaseModel):
        video: VideoRef = Field(description="The clip's frames (lossless); connect save_video for an MP4.")

    @retries_transient_failures
    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec = inputs.model
        require_family(ctx, spec, VIDEO_FAMILIES, "Image to video", "Use image_to_image for image models.")
        source = ctx.load_image(inputs.image).convert("RGB")
        width, height = fit_size(spec.family, inputs.width or source.width, inputs.height or source.height)
        if int(inputs.steps * inputs.strength) < 1:
            raise NodeError(ctx.node_id, f"{inputs.steps} steps at strength {inputs.strength} run no step")
        still = (
            source.resize((width, height), Image.Resampling.LANCZOS)
            if source.size != (width, height)
            else source
        )
        pipe = ctx.models.pipeline(spec, "img2video")
        pipe.scheduler = make_scheduler(inputs.scheduler, pipe.scheduler, spec.family)
        result = pipe(
            **prompt_kwargs(ctx, spec.family, inputs.prompt, inputs.negative_prompt, inputs.guidance),
            video=[still] * inputs.frames,
            strength=inputs.strength,
            width=width,
            height=height,
            num_inference_steps=inputs.steps,
            generator=generator(inputs.seed),
            output_type="pil",
            callback_on_step_end=StepReporter(
                ctx, spec.family, steps=inputs.steps, width=width, height=height
            ),
        )
        return self.Outputs(video=save_frames(ctx, result.frames[0], inputs.fps))


class SaveVideo(Node):
    type: ClassVar[str] = "save_video"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "video"
    title: ClassVar[str] = "Save video"
    description: ClassVar[str] = "Keep a clip as a result of the job: an H.264 MP4 that plays in any browser."

    class Inputs(BaseModel):
        video: VideoRef = Field(description="The clip to keep.")
        fps: float | None = Field(
            default=None, gt=0.0, le=60.0, description="Playback speed; default: the clip's."
        )
        quality: int = Field(
            default=18, ge=0, le=51, description="H.264 CRF: lower is better and larger; 18 looks lossless."
        )

    class Outputs(BaseModel):
        video: VideoRef = Field(description="The MP4 file.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        frames = load_frames(ctx, inputs.video)
        if not frames:
            raise NodeError(ctx.node_id, "the clip has no frames")
        fps = inputs.fps or inputs.video.fps
        data = encode_mp4(frames, fps, crf=inputs.quality)
        key, digest = ctx.save_bytes(data, "mp4", "video/mp4")
        width, height = frames[0].size
        return self.Outputs(
            video=VideoRef(key=key, sha256=digest, frames=len(frames), fps=fps, width=width, height=height)
        )


NODES: list[type[Node]] = [TextToVideo, ImageToVideo, SaveVideo]
