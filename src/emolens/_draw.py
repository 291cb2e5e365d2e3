"""Draw analysis results onto an image (boxes, landmarks, emotion labels)."""

from __future__ import annotations

import cv2
import numpy as np

from ._image import ColorOrder, ImageInput, load_image
from .labels import display_label
from .types import AnalysisResult, Box

__all__ = ["annotate", "draw_box"]

_GREEN, _ORANGE, _WHITE, _BLACK = (80, 200, 80), (0, 165, 255), (255, 255, 255), (0, 0, 0)


def _style(canvas: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness that stay legible from thumbnails to 4K frames."""
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    return scale, max(1, round(scale * 2))


def draw_box(canvas: np.ndarray, box: Box, text: str, color: tuple[int, int, int]) -> None:
    """Draw ``box`` and a filled label above it (below it at the top edge), in place."""
    scale, thickness = _style(canvas)
    x0, y0, x1, y1 = box.xyxy
    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, thickness)
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    ty = y0 - 4 if y0 - th - baseline - 4 >= 0 else min(canvas.shape[0] - 1, y1 + th + 4)
    cv2.rectangle(canvas, (x0, ty - th - baseline), (x0 + tw + 4, ty + baseline), color, -1)
    cv2.putText(canvas, text, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _BLACK, thickness, cv2.LINE_AA)


def annotate(image: ImageInput, result: AnalysisResult, *, color: ColorOrder = "bgr") -> np.ndarray:
    """A BGR copy of ``image`` with each face's box, landmarks, top emotion and probability drawn.

    Fallback faces (whole image, no face found) are drawn in orange.
    """
    canvas = load_image(image, color=color).bgr.copy()
    _, thickness = _style(canvas)
    for face in result.faces:
        draw_box(
            canvas, face.box, f"{display_label(face.label)} {face.confidence:.0%}", _ORANGE if face.fallback else _GREEN
        )
        if face.landmarks is not None:
            for point in face.landmarks:
                cv2.circle(canvas, (round(point.x), round(point.y)), thickness + 1, _ORANGE, -1)
    return canvas
