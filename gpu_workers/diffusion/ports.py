"""Port declarations shared by the generation nodes, so every node names and bounds them alike."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpu_workers.diffusion.schedulers import SchedulerName
from gpu_workers.sdk import ModelSpec, Seed


class PromptInputs(BaseModel):
    model: ModelSpec = Field(description="The base model (and LoRAs) to generate with.")
    prompt: str = Field(default="", max_length=4000, description="What to generate.")
    negative_prompt: str = Field(
        default="", max_length=4000, description="What to avoid (ignored by guidance-distilled Flux models)."
    )
    steps: int = Field(default=25, ge=1, le=150, description="Denoising steps; more is slower and finer.")
    guidance: float = Field(
        default=7.0, ge=0.0, le=30.0, description="How strongly to follow the prompt (Flux: about 3.5)."
    )
    seed: Seed = Field(default=0, description="Noise seed; the same seed and inputs give the same image.")
    scheduler: SchedulerName = Field(default="default", description="Sampler; 'default' is the model's own.")


class SizeInputs(BaseModel):
    width: int = Field(default=512, ge=64, le=2048, multiple_of=8, description="Width in pixels.")
    height: int = Field(default=512, ge=64, le=2048, multiple_of=8, description="Height in pixels.")


class OptionalSizeInputs(BaseModel):
    width: int | None = Field(
        default=None, ge=64, le=2048, multiple_of=8, description="Width in pixels; default: the input's."
    )
    height: int | None = Field(
        default=None, ge=64, le=2048, multiple_of=8, description="Height in pixels; default: the input's."
    )
