"""Choosing what to generate with: a base model, then LoRAs stacked on it.

Both nodes are cheap: they only resolve and inspect files (config, safetensors header) and return a
``ModelSpec``. Weights load lazily, once, in the generation node that uses the spec, through the
worker's pipeline cache; that keeps these nodes' checkpoints tiny and lets a graph that changes only
a LoRA weight reuse the warm base.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from gpu_workers.models.cache import LORA_FAMILIES, detect_base_family
from gpu_workers.models.detect import detect_file
from gpu_workers.models.errors import ModelError, ModelStoreUnreachable
from gpu_workers.models.store import single_weights_file
from gpu_workers.sdk import LoraSpec, ModelSpec, Node, NodeContext, NodeError, TransientNodeError

_FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL", "flux": "Flux", "video": "AnimateDiff video"}


def weights_digest(ctx: NodeContext, path: Path) -> str:
    """The file's SHA-256 when the worker's model provider can tell (the pipeline cache can), else ""."""
    digest = getattr(ctx.models, "digest", None)
    return str(digest(path)) if callable(digest) else ""


class LoadModel(Node):
    type: ClassVar[str] = "load_model"
    version: ClassVar[str] = "1.1.0"  # 1.1: the model output carries the weights' SHA-256
    category: ClassVar[str] = "model"
    title: ClassVar[str] = "Load model"
    description: ClassVar[str] = (
        "Pick a base model by reference (hf:, civitai:, local: or artifact:); its family (SD 1.5, SDXL, "
        "Flux, AnimateDiff video) is read from the model's own config."
    )
    # Always runs (it only reads a config and a remembered digest), so its output carries the digest
    # of the weights as they are now; a stored output would carry the digest of a replaced file.
    cacheable: ClassVar[bool] = False

    class Inputs(BaseModel):
        ref: str = Field(
            min_length=1,
            max_length=500,
            description="Reference of the base model.",
            json_schema_extra={"kizy_reference": "model"},
        )

    class Outputs(BaseModel):
        model: ModelSpec = Field(description="The model, ready for LoRAs and generation nodes.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        try:
            path = ctx.models.resolve(inputs.ref)
            if path.is_file() and detect_file(path)[1] is not None:
                raise NodeError(
                    ctx.node_id, f"{inputs.ref} is a LoRA, not a base model; use apply_lora for it"
                )
            family = detect_base_family(path)
            sha256 = weights_digest(ctx, path)
        except ModelStoreUnreachable as exc:  # the Hub did not answer: the executor tries again
            raise TransientNodeError(str(exc)) from exc
        except ModelError as exc:
            raise NodeError(ctx.node_id, str(exc)) from exc
        return self.Outputs(model=ModelSpec(ref=inputs.ref, family=family, sha256=sha256))


class ApplyLora(Node):
    type: ClassVar[str] = "apply_lora"
    version: ClassVar[str] = "1.1.0"  # 1.1: each LoRA in the output carries its file's SHA-256
    category: ClassVar[str] = "model"
    title: ClassVar[str] = "Apply LoRA"
    description: ClassVar[str] = (
        "Stack a LoRA on a model at a given strength; chain several to combine styles or subjects."
    )
    cacheable: ClassVar[bool] = False  # as load_model: the LoRA's digest is read fresh on every run

    class Inputs(BaseModel):
        model: ModelSpec = Field(description="The model to add the LoRA to.")
        lora: LoraSpec = Field(description="The LoRA reference and its strength (1.0 = as trained).")

    class Outputs(BaseModel):
        model: ModelSpec = Field(description="The model with this LoRA added after any earlier ones.")

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        spec, lora = inputs.model, inputs.lora
        try:
            path = single_weights_file(ctx.models.resolve(lora.ref))
            _header, fmt, family = detect_file(path)
            lora = lora.model_copy(update={"sha256": weights_digest(ctx, path)})
        except ModelStoreUnreachable as exc:  # the Hub did not answer: the executor tries again
            raise TransientNodeError(str(exc)) from exc
        except ModelError as exc:
            raise NodeError(ctx.node_id, str(exc)) from exc
        if fmt is None:
            raise NodeError(ctx.node_id, f"{lora.ref} holds no LoRA weights; is it a base model?")
        if family is not None and family not in LORA_FAMILIES.get(spec.family, {spec.family}):
            raise NodeError(
                ctx.node_id,
                f"LoRA {lora.ref} was trained for {_FAMILY_NAMES.get(family, family)} models and cannot be "
                f"applied to {spec.ref}, a {_FAMILY_NAMES.get(spec.family, spec.family)} model",
            )
        return self.Outputs(model=spec.model_copy(update={"loras": (*spec.loras, lora)}))


NODES: list[type[Node]] = [LoadModel, ApplyLora]
