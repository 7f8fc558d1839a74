"""Face boxes and feathered pasting for the face detailer.

Detection uses OpenCV's Haar cascade shipped inside ``opencv-python-headless`` 4.x (5.x wheels no
longer ship the XML files): no weights to download, fast on a CPU, and good enough for frontal
faces, which is what detailing is for. The re-drawn crop is pasted back through a mask that is
opaque over the face and fades to zero before the crop's border, so nothing outside the crop can
change and the seam is invisible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gpu_workers.models.lazy import untyped


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height


def detect_faces(image: Image.Image, *, min_size: int = 24) -> list[Box]:
    """Frontal faces, largest first."""
    import cv2

    cascades: str = untyped("cv2.data").haarcascades  # cv2's stubs do not declare cv2.data
    cascade = cv2.CascadeClassifier(cascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's face cascade is missing (needs opencv-python-headless 4.x)")
    gray = cv2.equalizeHist(np.asarray(image.convert("L")))
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    boxes = [Box(int(x), int(y), int(w), int(h)) for (x, y, w, h) in found]
    return sorted(boxes, key=lambda b: b.width * b.height, reverse=True)


def crop_box(face: Box, image_size: tuple[int, int], padding: float) -> Box:
    """A square around ``face`` grown by ``padding`` x its size on every side, kept inside the image."""
    side = int(round(max(face.width, face.height) * (1 + 2 * padding)))
    side = min(side, *image_size)
    cx, cy = face.x + face.width // 2, face.y + face.height // 2
    x = min(max(cx - side // 2, 0), image_size[0] - side)
    y = min(max(cy - side // 2, 0), image_size[1] - side)
    return Box(x, y, side, side)


def feather_mask(crop: Box, face: Box, *, feather: int) -> Image.Image:
    """An L mask the size of ``crop``: white over the face ellipse, blurred by ``feather`` pixels,
    and black along the crop's border so pasting leaves everything outside the crop untouched."""
    mask = Image.new("L", (crop.width, crop.height), 0)
    inset = feather
    ellipse = (
        max(face.x - crop.x - feather // 2, inset),
        max(face.y - crop.y - feather // 2, inset),
        min(face.right - crop.x + feather // 2, crop.width - 1 - inset),
        min(face.bottom - crop.y + feather // 2, crop.height - 1 - inset),
    )
    ImageDraw.Draw(mask).ellipse(ellipse, fill=255)
    return mask.filter(ImageFilter.GaussianBlur(feather / 2)) if feather else mask
