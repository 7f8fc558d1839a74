"""Compile a studio request into a graph of built-in nodes (the engine's public node contract).

    load_model ─ apply_lora* ─┬─ text_to_image | image_to_image | controlnet  (× num_outputs)
    load_image (guide) ───────┘        └─ face_detail? ─ upscale? ─ save_image

Catalog ids stay in the graph; the worker resolves them to model-store references.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .request_schema import size_for

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "sd15": {"steps": 25, "guidance": 7.0, "base": 512},
    "sdxl": {"steps": 30, "guidance": 6.0, "base": 1024},
    "flux": {"steps": 28, "guidance": 3.5, "base": 1024},
    "video": {"steps": 25, "guidance": 7.5, "base": 256},
}


@dataclass(frozen=True)
class ModelChoice:
    id: str
    family: str
    defaults: dict[str, Any] = field(default_factory=dict)  # steps, guidance, width/height or base


@dataclass(frozen=True)
class LoraChoice:
    id: str
    weight: float
    reason: str = ""


@dataclass
class Compiled:
    graph: dict[str, Any]
    resolved: dict[str, Any]  # the request with every default filled in, for the record and "re-run"


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, node_id: str, type_: str, **inputs: Any) -> dict[str, str]:
        self.nodes[node_id] = {"type": type_, "inputs": inputs}
        return {"node": node_id}

    @staticmethod
    def out(ref: dict[str, str], port: str) -> dict[str, str]:
        return {"node": ref["node"], "output": port}


def _settings(request: dict[str, Any], model: ModelChoice) -> dict[str, Any]:
    defaults = {**FAMILY_DEFAULTS.get(model.family, FAMILY_DEFAULTS["sd15"]), **model.defaults}
    if request.get("width") and request.get("height"):
        width, height = request["width"], request["height"]
    elif "width" in defaults and "height" in defaults and not request.get("aspect_ratio"):
        width, height = int(defaults["width"]), int(defaults["height"])
    else:  # the model's native pixel count, in the asked shape
        native = (int(defaults["width"]) * int(defaults["height"])) ** 0.5 if "width" in defaults else None
        width, height = size_for(request.get("aspect_ratio"), int(native or defaults.get("base", 512)))
    return {
        "width": width, "height": height,
        "steps": request.get("steps") or int(defaults["steps"]),
        "guidance": request["guidance"] if request.get("guidance") is not None else float(defaults["guidance"]),
    }


def compile_request(
    request: dict[str, Any], *, model: ModelChoice, loras: list[LoraChoice], guide: dict[str, Any] | None, seed: int,
    controlnet_ref: str = "",
) -> Compiled:
    """`controlnet_ref` is the installed ControlNet for the model's family (needed only with that detailer)."""
    g = _Graph()
    params = _settings(request, model)
    detailers = request.get("detailers") or {}
    model_ref = g.out(g.add("model", "load_model", ref=model.id), "model")
    for index, lora in enumerate(loras):
        model_ref = g.out(g.add(f"lora_{index}", "apply_lora", model=model_ref,
                                lora={"ref": lora.id, "weight": lora.weight}), "model")
    guide_ref = g.out(g.add("guide", "load_image", key=guide["key"]), "image") if guide else None
    common = {
        "model": model_ref, "prompt": request["prompt"], "negative_prompt": request.get("negative_prompt", ""),
        "width": params["width"], "height": params["height"], "steps": params["steps"],
        "guidance": params["guidance"], "scheduler": request.get("scheduler", "default"),
    }
    outputs = []
    for index in range(request.get("num_outputs", 1)):
        suffix = f"_{index}" if request.get("num_outputs", 1) > 1 else ""
        seed_i = (seed + index) % 2**32
        if guide_ref and detailers.get("controlnet"):
            image = g.out(g.add(f"generate{suffix}", "controlnet", **common, seed=seed_i, guide_image=guide_ref,
                                controlnet=controlnet_ref, preprocessor=detailers["controlnet"],
                                strength=detailers.get("controlnet_strength", 0.8)), "image")
        elif guide_ref:
            image = g.out(g.add(f"generate{suffix}", "image_to_image", **common, seed=seed_i, image=guide_ref,
                                strength=request.get("strength", 0.6)), "image")
        else:
            image = g.out(g.add(f"generate{suffix}", "text_to_image", **common, seed=seed_i), "image")
        if detailers.get("face_fix"):
            image = g.out(g.add(f"face_fix{suffix}", "face_detail", image=image, model=model_ref,
                                prompt=request["prompt"], negative_prompt=request.get("negative_prompt", ""),
                                seed=seed_i, steps=params["steps"], guidance=params["guidance"],
                                scheduler=request.get("scheduler", "default")), "image")
        if detailers.get("upscale"):
            image = g.out(g.add(f"upscale{suffix}", "upscale", image=image, scale=int(detailers["upscale"])), "image")
        g.add(f"save{suffix}", "save_image", image=image)
        outputs.append(f"save{suffix}")
    resolved = {**request, **params, "seed": seed, "model": model.id,
                "loras": [{"id": lora.id, "weight": lora.weight, "reason": lora.reason} for lora in loras]}
    return Compiled(graph={"nodes": g.nodes, "outputs": outputs}, resolved=resolved)
