"""YuNet (OpenCV Zoo), run by OpenCV's built-in ``cv2.FaceDetectorYN``.

Small (230 KB), fast on CPU, accurate on real photos, and returns five landmarks per face.
The ONNX weights are fetched on first use through the weights store.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from .._image import downscale
from .._registry import DetectorSpec
from ..types import Box, Detection, Landmarks
from ..weights import fetch

__all__ = ["YuNetDetector"]


class YuNetDetector:
    """YuNet with a score threshold of 0.8 and NMS at IoU 0.3.

    Images whose longer side exceeds ``max_side`` are downscaled for detection (boxes are mapped
    back to original pixels); ``max_side=None`` always runs at full size.
    """

    def __init__(
        self,
        spec: DetectorSpec,
        *,
        device: str = "cpu",
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = 1280,
        **_: Any,
    ) -> None:
        self.name = spec.name
        path = fetch(spec.weights[0])
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)
        self._max_side = max_side
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        image, scale = downscale(image, self._max_side)
        with self._lock:
            self._net.setInputSize((image.shape[1], image.shape[0]))
            _, faces = self._net.detect(image)
        if faces is None:
            return []
        height, width = image.shape[:2]
        to_original = np.array([scale] * 14 + [1.0], dtype=np.float32)  # boxes and landmarks, not the score
        detections = []
        for row in faces:
            if not _plausible(row, width, height):
                continue
            row = row / to_original
            x, y, w, h = (float(v) for v in row[:4])
            # YuNet lists the subject's right eye first, which is the eye on the image's left.
            landmarks = Landmarks.from_array(row[4:14].reshape(5, 2))
            box = Box(round(x), round(y), round(w), round(h))
            detections.append(Detection(box, float(row[14]), landmarks))
        return detections


def _plausible(row: np.ndarray, width: int, height: int) -> bool:
    """False for garbage rows: on inputs of a few dozen pixels OpenCV now and then returns inf/NaN boxes."""
    if not np.isfinite(row).all():
        return False
    x, y, w, h = (float(v) for v in row[:4])
    return w >= 1 and h >= 1 and x < width and y < height and x + w > 0 and y + h > 0
