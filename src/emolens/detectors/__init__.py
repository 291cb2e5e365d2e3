"""Face detectors: built-in specs and the detector registry.

Specs name their implementation by import string, so listing detectors imports no backend.
"""

from __future__ import annotations

from .._registry import DetectorSpec, Registry, WeightsFile
from ._base import Detector

__all__ = ["BUILTIN_DETECTORS", "DETECTORS", "Detector"]

YUNET_WEIGHTS = WeightsFile(
    name="face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    urls=(
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    ),
    size=232589,
    license="MIT (OpenCV Zoo, YuNet by Shiqi Yu et al.)",
)

BUILTIN_DETECTORS: tuple[DetectorSpec, ...] = (
    DetectorSpec(
        name="haar",
        builder="emolens.detectors.haar:HaarDetector",
        description="OpenCV Haar cascade: always available, fast, misses turned faces, no scores.",
        license="BSD-3-Clause (OpenCV)",
    ),
    DetectorSpec(
        name="yunet",
        builder="emolens.detectors.yunet:YuNetDetector",
        description="OpenCV YuNet (cv2.FaceDetectorYN): accurate, fast, 5 landmarks; 230 KB weights downloaded once.",
        weights=(YUNET_WEIGHTS,),
        landmarks=True,
        license=YUNET_WEIGHTS.license,
    ),
)

DETECTORS: Registry[DetectorSpec] = Registry("detector", BUILTIN_DETECTORS, entry_point_group="emolens.detectors")
