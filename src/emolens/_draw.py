"""Draw analysis results onto an image (boxes, landmarks, emotion labels)."""

from __future__ import annotations

import cv2
import numpy as np

from ._image import ColorOrder, ImageInput, load_image
from .types import AnalysisResult

__all__ = ["annotate"]

_GREEN, _ORANGE, _WHITE, _BLACK = (80, 200, 80), (0, 165, 255), (255, 255, 255), (0, 0, 0)


def annotate(image: ImageInput, result: AnalysisResult, *, color: ColorOrder = "bgr") -> np.ndarray:
    """A BGR copy of ``image`` with each face's box, landmarks, top emotion and probability drawn.

    Fallback faces (whole image, no face found) are drawn in orange.
    """
    canvas = load_image(image, color=color).bgr.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    thickness = max(1, round(scale * 2))
    for face in result.faces:
        x0, y0, x1, y1 = face.box.xyxy
        box_color = _ORANGE if face.fallback else _GREEN
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), box_color, thickness)
        if face.landmarks is not None:
            for point in face.landmarks:
                cv2.circle(canvas, (round(point.x), round(point.y)), thickness + 1, _ORANGE, -1)
        text = f"{face.emotion.label()} {face.confidence:.0%}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        ty = y0 - 4 if y0 - th - baseline - 4 >= 0 else min(canvas.shape[0] - 1, y1 + th + 4)
        cv2.rectangle(canvas, (x0, ty - th - baseline), (x0 + tw + 4, ty + baseline), box_color, -1)
        cv2.putText(canvas, text, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _BLACK, thickness, cv2.LINE_AA)
    return canvas
