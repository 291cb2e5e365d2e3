"""Register your own face detector and use it by name.

This one wraps OpenCV's Haar cascade for *profile* faces, which the built-in detectors do not cover.

    python examples/custom_detector.py [PHOTO]
"""

import sys
import threading
from pathlib import Path

import cv2
import numpy as np

import emolens
from emolens import Box, Detection, DetectorSpec


class ProfileFaceDetector:
    """Side-view faces, looked for in the image and in its mirror (the cascade only knows one side)."""

    def __init__(self, spec: DetectorSpec, *, device: str = "cpu") -> None:
        self.name = spec.name
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_profileface.xml")
        self._lock = threading.Lock()  # OpenCV cascades are not documented as thread-safe

    def detect(self, image: np.ndarray) -> list[Detection]:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        width = gray.shape[1]
        with self._lock:
            right = self._cascade.detectMultiScale(gray, 1.1, 5, minSize=(24, 24))
            left = self._cascade.detectMultiScale(cv2.flip(gray, 1), 1.1, 5, minSize=(24, 24))
        boxes = [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in right]
        boxes += [Box(int(width - x - w), int(y), int(w), int(h)) for x, y, w, h in left]
        return [Detection(box, score=1.0) for box in boxes]


emolens.register_detector(
    DetectorSpec(name="haar-profile", builder=ProfileFaceDetector, description="OpenCV profile-face cascade"),
    overwrite=True,
)

REPO = Path(__file__).resolve().parents[1]
photo = sys.argv[1] if len(sys.argv) > 1 else str(REPO.parent / "shared" / "images" / "group" / "multiface.jpg")
print("registered detectors:", ", ".join(emolens.list_detectors()))
result = emolens.analyze(photo, detector="haar-profile", fallback=False)
print(f"{result.detector}: {len(result.faces)} faces:", [f.label for f in result.faces])
