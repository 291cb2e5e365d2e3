"""OpenCV's Viola-Jones (Haar cascade) frontal-face detector.

Always available (the cascade ships with opencv-python-headless 4.x), fast, but the least
accurate backend: it misses turned faces and has no confidence score (every face scores 1.0).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .._registry import DetectorSpec
from ..errors import MissingDependencyError
from ..types import Box, Detection
from ._base import detect_downscaled

__all__ = ["HaarDetector"]

_CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """Haar cascade with OpenCV's usual settings (scale 1.1, 5 neighbours, 20 px minimum).

    Images whose longer side exceeds ``max_side`` are downscaled for detection; ``None`` runs at full size.
    """

    def __init__(
        self,
        spec: DetectorSpec | None = None,
        *,
        device: str = "cpu",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 20,
        max_side: int | None = 1280,
        **_: Any,
    ) -> None:
        self.name = spec.name if spec else "haar"
        data = getattr(cv2, "data", None)
        path = Path(data.haarcascades) / _CASCADE if data is not None else None
        if path is None or not path.is_file() or not hasattr(cv2, "CascadeClassifier"):
            raise MissingDependencyError(
                "opencv-python-headless>=4.8,<5", "haar", "the Haar detector (its cascade file is missing)"
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._min_size = (min_size, min_size)
        self._max_side = max_side
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        return detect_downscaled(image, self._max_side, self._detect)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        with self._lock:
            boxes = self._cascade.detectMultiScale(
                gray, scaleFactor=self._scale_factor, minNeighbors=self._min_neighbors, minSize=self._min_size
            )
        return [Detection(Box(int(x), int(y), int(w), int(h)), 1.0) for x, y, w, h in boxes]
