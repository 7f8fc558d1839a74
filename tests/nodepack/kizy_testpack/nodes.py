"""Small CPU-only nodes, each exercising one part of the SDK and executor."""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, Field

from gpu_workers.sdk import (
    ImageRef,
    LoraSpec,
    ModelSpec,
    Node,
    NodeContext,
    Seed,
    TransientNodeError,
)
from kizy_testpack.counters import ATTEMPTS, RUNS, STEPS


class ConstInt(Node):
    type: ClassVar[str] = "const_int"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "math"
    title: ClassVar[str] = "Number"
    description: ClassVar[str] = "Outputs the number it is given."

    class Inputs(BaseModel):
        value: int = Field(ge=-1_000_000, le=1_000_000, description="The number.")

    class Outputs(BaseModel):
        value: int = Field(description="The same number.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        return self.Outputs(value=inputs.value)


class Add(Node):
    type: ClassVar[str] = "add"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "math"
    title: ClassVar[str] = "Add"
    description: ClassVar[str] = "Adds two numbers."

    class Inputs(BaseModel):
        a: int = Field(description="First number.")
        b: int = Field(default=0, description="Second number.")

    class Outputs(BaseModel):
        sum: int = Field(description="a + b")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        return self.Outputs(sum=inputs.a + inputs.b)


class Scale(Node):
    type: ClassVar[str] = "scale"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "math"
    title: ClassVar[str] = "Scale"
    description: ClassVar[str] = "Multiplies a number by a factor."

    class Inputs(BaseModel):
        x: float = Field(description="The number.")
        factor: float = Field(default=1.0, ge=0.0, le=10.0, description="The factor.")

    class Outputs(BaseModel):
        y: float = Field(description="x * factor")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        return self.Outputs(y=inputs.x * inputs.factor)


class MakeImage(Node):
    type: ClassVar[str] = "make_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Solid colour"
    description: ClassVar[str] = "An image of one colour."

    class Inputs(BaseModel):
        width: int = Field(default=16, ge=1, le=1024, description="Width in pixels.")
        height: int = Field(default=16, ge=1, le=1024, description="Height in pixels.")
        color: str = Field(default="#ff0000", pattern=r"^#[0-9a-fA-F]{6}$", description="Colour as #rrggbb.")

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The image.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        image = Image.new("RGB", (inputs.width, inputs.height), inputs.color)
        return self.Outputs(image=ctx.save_image(image))


class InvertImage(Node):
    type: ClassVar[str] = "invert_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Invert colours"
    description: ClassVar[str] = "Replaces every colour by its opposite."

    class Inputs(BaseModel):
        image: ImageRef = Field(description="The image to invert.")

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The inverted image.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        image = ImageOps.invert(ctx.load_image(inputs.image).convert("RGB"))
        return self.Outputs(image=ctx.save_image(image))


class NoiseImage(Node):
    type: ClassVar[str] = "noise_image"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "image"
    title: ClassVar[str] = "Seeded colour"
    description: ClassVar[str] = "A solid image whose colour is picked from the seed."

    class Inputs(BaseModel):
        seed: Seed = Field(default=0, description="Seed of the colour.")
        size: int = Field(default=8, ge=1, le=256, description="Side in pixels.")

    class Outputs(BaseModel):
        image: ImageRef = Field(description="The image.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        rgb = (inputs.seed % 256, (inputs.seed // 256) % 256, (inputs.seed // 65536) % 256)
        return self.Outputs(image=ctx.save_image(Image.new("RGB", (inputs.size, inputs.size), rgb)))


class Flaky(Node):
    type: ClassVar[str] = "flaky"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Flaky"
    description: ClassVar[str] = "Fails the first `failures` attempts for a key, then succeeds."
    retryable_errors = (ConnectionError,)
    max_retries = 3

    class Inputs(BaseModel):
        key: str = Field(description="Attempts are counted per key.")
        failures: int = Field(default=1, ge=0, le=10, description="Attempts that fail before one succeeds.")
        error: Literal["transient", "connection"] = Field(
            default="transient", description="Raise TransientNodeError or ConnectionError."
        )
        value: int = Field(default=1, description="Output value.")

    class Outputs(BaseModel):
        value: int = Field(description="The value, once an attempt succeeds.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        ATTEMPTS[inputs.key] += 1
        if ATTEMPTS[inputs.key] <= inputs.failures:
            if inputs.error == "connection":
                raise ConnectionError(f"connection dropped (attempt {ATTEMPTS[inputs.key]})")
            raise TransientNodeError(f"temporary failure (attempt {ATTEMPTS[inputs.key]})")
        return self.Outputs(value=inputs.value)


class FailAlways(Node):
    type: ClassVar[str] = "fail_always"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Always fails"
    description: ClassVar[str] = "Raises ValueError with the given message."

    class Inputs(BaseModel):
        message: str = Field(default="this node always fails", description="Error message.")
        value: int = Field(default=0, description="Ignored input, to hang edges on.")

    class Outputs(BaseModel):
        value: int = Field(description="Never produced.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        raise ValueError(inputs.message)


class SlowSteps(Node):
    type: ClassVar[str] = "slow_steps"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Slow steps"
    description: ClassVar[str] = "Reports progress once per step and honours cancellation."

    class Inputs(BaseModel):
        label: str = Field(default="slow", description="Steps are counted per label.")
        steps: int = Field(default=5, ge=1, le=1000, description="Number of steps.")
        delay_s: float = Field(default=0.0, ge=0.0, le=1.0, description="Sleep per step.")
        preview: bool = Field(default=False, description="Send a preview image with each step.")

    class Outputs(BaseModel):
        completed: int = Field(description="Steps completed.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        for step in range(1, inputs.steps + 1):
            time.sleep(inputs.delay_s)
            STEPS[inputs.label] += 1
            preview = Image.new("RGB", (512, 512), (step % 256, 0, 0)) if inputs.preview else None
            ctx.progress(step, inputs.steps, preview)
        ctx.log(f"finished {inputs.steps} steps")
        return self.Outputs(completed=inputs.steps)


class ModelEcho(Node):
    type: ClassVar[str] = "model_echo"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Model echo"
    description: ClassVar[str] = "Reports the model reference and LoRA count it receives."

    class Inputs(BaseModel):
        model: ModelSpec = Field(description="A model spec.")
        extra_loras: list[LoraSpec] = Field(default_factory=list, description="More LoRAs.")

    class Outputs(BaseModel):
        ref: str = Field(description="The model reference.")
        lora_count: int = Field(description="LoRAs in the spec plus extra ones.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        return self.Outputs(
            ref=inputs.model.ref, lora_count=len(inputs.model.loras) + len(inputs.extra_loras)
        )


class Clock(Node):
    type: ClassVar[str] = "clock"
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Clock"
    description: ClassVar[str] = "Outputs the current time; never reused across jobs."
    cacheable: ClassVar[bool] = False

    class Inputs(BaseModel):
        pass

    class Outputs(BaseModel):
        now: float = Field(description="Seconds since the epoch.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        RUNS[self.type] += 1
        return self.Outputs(now=time.time())


NODES: list[type[Node]] = [
    ConstInt,
    Add,
    Scale,
    MakeImage,
    InvertImage,
    NoiseImage,
    Flaky,
    FailAlways,
    SlowSteps,
    ModelEcho,
    Clock,
]
