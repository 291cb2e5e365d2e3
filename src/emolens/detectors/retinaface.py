"""Adapter for the ``retina-face`` PyPI package (ResNet-50 RetinaFace), always on its PyTorch engine.

Optional extra: ``pip install 'emolens[retinaface]'``. The package downloads its own weights
(``retinaface.pth``) with its own downloader; emolens points that downloader's home into the
emolens cache (``$EMOLENS_HOME/retina-face``) unless ``DEEPFACE_HOME`` is already set, and never
lets it choose TensorFlow. The package reads those settings from environment variables: emolens sets
them only while it imports the package and builds its model, then restores them, so the rest of the
process never sees them. The package keeps one global model, so calls are serialised by a lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .._optional import require
from .._registry import DetectorSpec
from ..errors import EmolensError, InvalidOptionError, WeightsDownloadError, WeightsUnavailableError
from ..types import Box, Detection, Landmarks
from ..weights import cache_dir, is_offline
from ._base import detect_downscaled

__all__ = ["RetinaFacePackageDetector", "package_home"]

_ENGINE_VARIABLE = "DEEPFACE_BACKEND_ENGINE"
_HOME_VARIABLE = "DEEPFACE_HOME"
_WEIGHTS = "retinaface.pth"
_lock = threading.Lock()


def package_home() -> Path:
    """The folder the retina-face package keeps its weights under (``<home>/.deepface/weights``)."""
    return Path(os.environ.get(_HOME_VARIABLE) or cache_dir() / "retina-face")


@contextlib.contextmanager
def _package_environment() -> Iterator[None]:
    """The package's environment variables, set for the duration of the block only (caller holds _lock)."""
    engine = os.environ.get(_ENGINE_VARIABLE, "pytorch").strip().lower()
    if engine != "pytorch":
        raise InvalidOptionError(
            f"{_ENGINE_VARIABLE}={engine} is set; emolens runs retina-face on its pytorch engine only: unset it",
            option=_ENGINE_VARIABLE,
        )
    saved = {name: os.environ.get(name) for name in (_ENGINE_VARIABLE, _HOME_VARIABLE)}
    os.environ[_ENGINE_VARIABLE] = "pytorch"
    os.environ[_HOME_VARIABLE] = str(package_home())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _import_package() -> ModuleType:
    return require(
        "retinaface.RetinaFace", extra="retinaface", feature="the 'retinaface' detector", package="retina-face"
    )


class RetinaFacePackageDetector:
    """ResNet-50 RetinaFace from the retina-face package, with 5 landmarks; ``score_threshold`` as there (0.9)."""

    def __init__(
        self,
        spec: DetectorSpec,
        *,
        device: str = "cpu",
        score_threshold: float = 0.9,
        max_side: int | None = 1280,
        **_: Any,
    ) -> None:
        self.name = spec.name
        self._max_side = max_side
        self._threshold = score_threshold
        with _lock, _package_environment():
            self._module = _import_package()
            weights = package_home() / ".deepface" / "weights" / _WEIGHTS
            if is_offline() and not weights.is_file():
                raise WeightsUnavailableError(
                    f"{_WEIGHTS} (retina-face package) is not in {weights.parent} and EMOLENS_OFFLINE is set; "
                    "build the detector once with network access, or copy the file there",
                    filename=_WEIGHTS,
                )
            try:
                self._model = self._module.build_model()
            except EmolensError:
                raise
            except Exception as exc:  # the package's own downloader failed (ValueError, OSError, ...)
                raise WeightsDownloadError(
                    f"the retina-face package could not get its weights ({exc}); copy {_WEIGHTS} into {weights.parent}",
                    filename=_WEIGHTS,
                    url="retina-face package downloader",
                ) from exc

    def detect(self, image: np.ndarray) -> list[Detection]:
        return detect_downscaled(image, self._max_side, self._detect)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        with _lock:
            found = self._module.detect_faces(image, threshold=self._threshold, model=self._model)
        if not isinstance(found, dict):  # the package returns a tuple when nothing is found
            return []
        detections = []
        for face in found.values():
            x0, y0, x1, y1 = (int(v) for v in face["facial_area"])
            marks = face["landmarks"]
            eyes = sorted([marks["right_eye"], marks["left_eye"]], key=lambda p: float(p[0]))  # image-left first
            mouth = sorted([marks["mouth_right"], marks["mouth_left"]], key=lambda p: float(p[0]))
            points = [eyes[0], eyes[1], marks["nose"], mouth[0], mouth[1]]
            detections.append(
                Detection(Box(x0, y0, x1 - x0, y1 - y0), float(face["score"]), Landmarks.from_array(points))
            )
        return detections
