"""Turn a guide image into a ControlNet condition map.

- ``canny``: OpenCV edge map (white edges on black), what canny ControlNets were trained on.
- ``depth``: a *proxy*, not a depth estimator: heavily blurred luminance, stretched to the full
  range, so bright areas read as near. Real monocular depth (MiDaS, Depth Anything) needs weights no
  registry here ships; the proxy keeps the depth path usable and cheap, and a user who has a true
  depth map can pass it with ``none``.
- ``none``: the guide image is already a condition map.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

Preprocessor = Literal["canny", "depth", "none"]


def canny(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    import cv2

    gray = np.asarray(image.convert("L"))
    edges = cv2.Canny(gray, low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), "RGB")


def depth_proxy(image: Image.Image) -> Image.Image:
    import cv2

    gray = np.asarray(image.convert("L"), dtype=np.float32)
    radius = max(3, (min(gray.shape) // 32) | 1)  # odd kernel, scaled with the image
    blurred = cv2.GaussianBlur(gray, (radius, radius), 0)
    low, high = float(blurred.min()), float(blurred.max())
    scaled = (blurred - low) / (high - low) * 255.0 if high > low else np.zeros_like(blurred)
    channel = scaled.round().astype(np.uint8)
    return Image.fromarray(np.stack([channel] * 3, axis=-1), "RGB")


def control_map(image: Image.Image, preprocessor: Preprocessor, width: int, height: int) -> Image.Image:
    """The condition map at the output size (ControlNets expect it pixel-aligned with the output)."""
    rgb = image.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
    if preprocessor == "canny":
        return canny(rgb)
    if preprocessor == "depth":
        return depth_proxy(rgb)
    return rgb
