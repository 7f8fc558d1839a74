"""Kizy's built-in node pack, registered through the ``kizy.nodes`` entry point like any other pack.

The root ``pyproject.toml`` names this module (``kizy-builtin = "gpu_workers.nodes.builtin"``); the
registry reads ``NODES``. One topic per module (CONVENTIONS 10): add a topic by importing it here
and extending ``NODES``. Topic modules must import heavy libraries (torch, diffusers) inside
``run`` or lazily, so that listing nodes stays fast for the web process.
"""

from __future__ import annotations

from gpu_workers.nodes.builtin import (
    controlnet,
    core,
    face_detail,
    generate,
    images,
    models,
    upscale,
    video,
)
from gpu_workers.sdk import Node

NODES: list[type[Node]] = [
    *core.NODES,
    *images.NODES,
    *models.NODES,
    *generate.NODES,
    *controlnet.NODES,
    *upscale.NODES,
    *face_detail.NODES,
    *video.NODES,
]
