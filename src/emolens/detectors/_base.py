"""The interface every face detector implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Box, Detection, Landmarks, Point

__all__ = ["Detector", "detect_downscaled"]


@runtime_checkable
class Detector(Protocol):
    """Finds faces in a BGR uint8 image of shape (H, W, 3).

    Implementations must be safe to call from several threads (hold a lock around any
    per-call state) and return boxes in the pixels of the image they were given.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in ``image``, in any order."""
        ...


def detect_downscaled(
    image: np.ndarray,
    max_side: int | None,
    detect: Callable[[np.ndarray], list[Detection]],
    *,
    max_pixels: int | None = None,
) -> list[Detection]:
    """``detect`` run on a copy of ``image`` whose longer side is at most ``max_side`` (and whose area is at
    most ``max_pixels``, when given), boxes and landmarks mapped back.

    What bounds a detector's time and memory on a huge image (a 40-megapixel photo costs the Haar
    cascade 2 GB at full size); ``max_side=None`` runs at full size. Crops are still cut from the
    full-resolution image.
    """
    from .._image import downscale  # here, not at import: listing detectors loads no OpenCV

    height, width = image.shape[:2]
    if max_pixels is not None and height * width > max_pixels:
        by_area = max(1, int(max(height, width) * (max_pixels / (height * width)) ** 0.5))
        max_side = by_area if max_side is None else min(max_side, by_area)
    small, scale = downscale(image, max_side)
    found = detect(small)
    if scale == 1.0:
        return found
    return [_scaled(d, 1.0 / scale) for d in found]


def _scaled(detection: Detection, factor: float) -> Detection:
    box = detection.box
    x0, y0 = round(box.x * factor), round(box.y * factor)
    x1, y1 = round((box.x + box.width) * factor), round((box.y + box.height) * factor)
    landmarks = detection.landmarks
    if landmarks is not None:
        landmarks = Landmarks(*(Point(p.x * factor, p.y * factor) for p in landmarks))
    return Detection(Box(x0, y0, x1 - x0, y1 - y0), detection.score, landmarks)
