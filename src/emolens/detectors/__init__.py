"""Face detectors: built-in specs and the detector registry.

Specs name their implementation by import string, so listing detectors imports no backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from .._registry import DetectorSpec, Registry, WeightsFile
from ._base import Detector

if TYPE_CHECKING:
    from ._factory import create_detector, reset_auto_choice

__all__ = ["BUILTIN_DETECTORS", "DETECTORS", "Detector", "create_detector", "reset_auto_choice"]

YUNET_WEIGHTS = WeightsFile(
    name="face_detection_yunet_2023mar_any_size.onnx",
    sha256="85260e29ac9c2546c0f4dcb9f98ad5b754e986f76592473013aa6cfd8c0e446b",
    size=229770,
    bundled=True,  # 230 KB, MIT: inside the wheel, so the default detector works offline on the first run
    license=(
        "MIT (OpenCV Zoo, YuNet by Shiqi Yu et al.; its input size left open by tools/yunet_any_size.py; "
        "notice in emolens/detectors/weights/LICENSE-YuNet.txt)"
    ),
)

RETINAFACE_MOBILENET_WEIGHTS = WeightsFile(
    name="detection_mobilenet0.25_Final.pth",
    sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
    urls=("https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",),
    size=1789735,
    license="MIT (RetinaFace MobileNet-0.25, biubug6/Pytorch_Retinaface training)",
)

DLIB_CNN_WEIGHTS = WeightsFile(
    name="mmod_human_face_detector.dat.bz2",
    sha256="db9e9e40f092c118d5eb3e643935b216838170793559515541c56a2b50d9fc84",
    urls=("https://github.com/davisking/dlib-models/raw/master/mmod_human_face_detector.dat.bz2",),
    size=694687,
    license="CC0 (dlib CNN face detector)",
    unpack="bz2",
    unpacked_sha256="be467b1a76f482693de3b0f6a1ff91d092319be71523d4d4b0628f6a53fcb87a",
)

BUILTIN_DETECTORS: tuple[DetectorSpec, ...] = (
    DetectorSpec(
        name="haar",
        builder="emolens.detectors.haar:HaarDetector",
        description="OpenCV Haar cascade: always available, fast, misses turned faces, no scores.",
        license="BSD-3-Clause (OpenCV)",
        options={"scale_factor": 1.1, "min_neighbors": 5, "min_size": 20, "max_side": 1280},
    ),
    DetectorSpec(
        name="yunet",
        builder="emolens.detectors.yunet:YuNetDetector",
        description="OpenCV Zoo's YuNet on onnxruntime (or OpenCV): accurate, fast, 5 landmarks; 230 KB bundled.",
        weights=(YUNET_WEIGHTS,),
        landmarks=True,
        license=YUNET_WEIGHTS.license,
        options={"score_threshold": 0.8, "nms_threshold": 0.3, "top_k": 5000, "max_side": 1280, "engine": "auto"},
    ),
    DetectorSpec(
        name="retinaface-mobilenet",
        builder="emolens.detectors.retinaface_mobilenet:RetinaFaceDetector",
        description="RetinaFace MobileNet-0.25 in torch (CPU or CUDA): accurate, 5 landmarks; 1.8 MB weights.",
        weights=(RETINAFACE_MOBILENET_WEIGHTS,),
        landmarks=True,
        license=RETINAFACE_MOBILENET_WEIGHTS.license,
        options={"score_threshold": 0.8, "nms_threshold": 0.4, "max_side": 1280},
    ),
    DetectorSpec(
        name="dlib-hog",
        builder="emolens.detectors.dlib_backend:DlibHOGDetector",
        description="dlib HOG + linear SVM: frontal faces only, no weights file, CPU.",
        extra="dlib",
        requires=("dlib",),
        license="Boost Software License (dlib)",
        options={"upsample": 1, "max_side": 1280},
    ),
    DetectorSpec(
        name="dlib-cnn",
        builder="emolens.detectors.dlib_backend:DlibCNNDetector",
        description="dlib MMOD CNN: robust to pose, slow on CPU; 0.7 MB weights downloaded once.",
        weights=(DLIB_CNN_WEIGHTS,),
        extra="dlib",
        requires=("dlib",),
        license=DLIB_CNN_WEIGHTS.license,
        options={"upsample": 1, "max_side": 1280},
    ),
    DetectorSpec(
        name="retinaface",
        builder="emolens.detectors.retinaface:RetinaFacePackageDetector",
        description="retina-face package (ResNet-50 RetinaFace) on its PyTorch engine; weights via its own downloader.",
        extra="retinaface",
        requires=("retinaface",),
        landmarks=True,
        license="MIT (retina-face package); weights: see the package",
        options={"score_threshold": 0.9, "max_side": 1280},
        package_weights=True,
    ),
)

DETECTORS: Registry[DetectorSpec] = Registry(
    "detector", BUILTIN_DETECTORS, entry_point_group="emolens.detectors", reserved=("auto", "none")
)

# The factory reads DETECTORS above: resolved on first use (PEP 562).
__getattr__, __dir__ = lazy_attributes(__name__, {"._factory": ["create_detector", "reset_auto_choice"]}, __all__)
