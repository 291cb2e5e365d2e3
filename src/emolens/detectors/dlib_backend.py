"""dlib's face detectors: the HOG + linear SVM frontal detector and the MMOD CNN detector.

dlib is an optional extra (``pip install 'emolens[dlib]'``; it builds from source). Scores are
dlib's raw SVM/MMOD margins squashed into [0, 1] with a logistic function (uncalibrated).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import cv2
import numpy as np

from .._optional import require
from .._registry import DetectorSpec
from ..types import Box, Detection
from ..weights import fetch
from ._base import detect_downscaled

__all__ = ["DlibCNNDetector", "DlibHOGDetector"]


def _squash(margin: float) -> float:
    return 1.0 / (1.0 + math.exp(-margin))


# Both detectors take ``max_side``: a longer image side is downscaled to it for detection; ``None`` runs at full
# size. The CNN's memory also grows with the upsampled image's area (about 900 bytes per pixel: 5.9 GB for a
# 1280x1280 input), so it detects on at most _CNN_MAX_PIXELS (before upsampling; 0.8 GB, benchmarks/reliability.py),
# which keeps photos of up to 500x400 at full size.
_CNN_MAX_PIXELS = 200_000
# Both detectors scan an 80x80 window over an image pyramid, so no face fits in an image whose shorter side,
# after upsampling, is below it. Skipping such images matters: dlib's CNN raises on tiny inputs and its
# detector object is unusable (double free) afterwards.
_WINDOW = 80


def _too_small(image: np.ndarray, upsample: int) -> bool:
    shorter: int = min(image.shape[:2])
    return shorter << upsample < _WINDOW


def _box(rect: Any) -> Box:
    return Box(int(rect.left()), int(rect.top()), int(rect.width()), int(rect.height()))


class DlibHOGDetector:
    """dlib's frontal-face HOG detector; ``upsample`` doubles the image that many times (finds smaller faces)."""

    def __init__(
        self, spec: DetectorSpec, *, device: str = "cpu", upsample: int = 1, max_side: int | None = 1280, **_: Any
    ) -> None:
        dlib = require("dlib", extra="dlib", feature=f"the {spec.name!r} detector")
        self.name = spec.name
        self._detector = dlib.get_frontal_face_detector()
        self._upsample = upsample
        self._max_side = max_side
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        return detect_downscaled(image, self._max_side, self._detect)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if _too_small(image, self._upsample):
            return []
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        with self._lock:
            rects, scores, _ = self._detector.run(rgb, self._upsample, 0.0)
        return [Detection(_box(r), _squash(s)) for r, s in zip(rects, scores, strict=True)]


class DlibCNNDetector:
    """dlib's MMOD CNN face detector (more accurate than HOG, slow on CPU; uses CUDA if dlib was built with it)."""

    def __init__(
        self, spec: DetectorSpec, *, device: str = "cpu", upsample: int = 1, max_side: int | None = 1280, **_: Any
    ) -> None:
        dlib = require("dlib", extra="dlib", feature=f"the {spec.name!r} detector")
        self.name = spec.name
        self._detector = dlib.cnn_face_detection_model_v1(str(fetch(spec.weights[0])))
        self._upsample = upsample
        self._max_side = max_side
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        budget = None if self._max_side is None else _CNN_MAX_PIXELS >> 2 * max(self._upsample - 1, 0)
        return detect_downscaled(image, self._max_side, self._detect, max_pixels=budget)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if _too_small(image, self._upsample):
            return []
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        with self._lock:
            found = self._detector(rgb, self._upsample)
        return [Detection(_box(d.rect), _squash(d.confidence)) for d in found]
