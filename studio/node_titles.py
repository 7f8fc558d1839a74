"""What a running node is doing, in plain words ("Upscaling ×4", "Fixing faces"), for every client:
the studio, the polling fallback, the API's `current_node.title` and the workspace websocket."""
from __future__ import annotations

from typing import Any

NODE_WORDS = {
    "load_model": "Loading the model", "apply_lora": "Applying LoRA", "load_image": "Reading the guide image",
    "text_to_image": "Generating", "image_to_image": "Generating from the guide image",
    "controlnet": "Generating along the guide image", "face_detail": "Fixing faces", "upscale": "Upscaling",
    "save_image": "Saving", "resize": "Resizing", "text_to_video": "Generating the video",
    "image_to_video": "Animating the guide image", "save_video": "Saving",
}


def plain_title(node_type: str, node_title: str, inputs: dict[str, Any] | None = None) -> str:
    """The node type in plain words (with the upscale factor when the graph gives it literally); the
    node class's own title for types without words (custom node packs)."""
    words = NODE_WORDS.get(node_type)
    if words is None:
        return node_title or node_type
    scale = (inputs or {}).get("scale")
    if node_type == "upscale" and isinstance(scale, int | float) and not isinstance(scale, bool):
        words += f" ×{int(scale) if float(scale).is_integer() else scale}"
    return words


def graph_node_inputs(graph: dict[str, Any] | None, node_id: str) -> dict[str, Any]:
    node = ((graph or {}).get("nodes") or {}).get(node_id)
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}
