"""emolens: find every face in an image and classify its emotion.

>>> import emolens
>>> result = emolens.analyze("photo.jpg")          # doctest: +SKIP
>>> [(face.label, round(face.confidence, 2)) for face in result.faces]  # doctest: +SKIP

Importing emolens is cheap: torch, OpenCV and the detector backends load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._registry import ArchitectureSpec, DetectorSpec, InputSpec, ModelSpec, WeightsFile
from .errors import (
    DatasetError,
    EmolensError,
    EmolensWarning,
    ImageTooLargeError,
    InvalidImageError,
    InvalidOptionError,
    InvalidVideoError,
    MissingDependencyError,
    UnknownNameError,
    WeightsDownloadError,
    WeightsError,
    WeightsIntegrityError,
    WeightsUnavailableError,
)
from .labels import LabelSet
from .types import AnalysisResult, Box, Detection, Emotion, Face, FrameResult, Landmarks, Point, TrackedFace

if TYPE_CHECKING:
    from ._analyzer import Analyzer
    from ._api import analyze, analyze_batch
    from ._batch import BatchReport, batch
    from ._draw import annotate
    from ._rows import to_dataframe
    from .detectors import Detector
    from .detectors._factory import create_detector
    from .models._classifier import EmotionModel, ModelOutput
    from .models._load import load_model
    from .video import VideoAnalysis, analyze_video

__version__ = "0.1.0"

__all__ = [
    "AnalysisResult",
    "Analyzer",
    "ArchitectureSpec",
    "BatchReport",
    "Box",
    "DatasetError",
    "Detection",
    "Detector",
    "DetectorSpec",
    "EmolensError",
    "EmolensWarning",
    "Emotion",
    "EmotionModel",
    "Face",
    "FrameResult",
    "ImageTooLargeError",
    "InputSpec",
    "InvalidImageError",
    "InvalidOptionError",
    "InvalidVideoError",
    "LabelSet",
    "Landmarks",
    "MissingDependencyError",
    "ModelOutput",
    "ModelSpec",
    "Point",
    "TrackedFace",
    "UnknownNameError",
    "VideoAnalysis",
    "WeightsDownloadError",
    "WeightsError",
    "WeightsFile",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "__version__",
    "analyze",
    "analyze_batch",
    "analyze_video",
    "annotate",
    "batch",
    "create_detector",
    "download",
    "list_detectors",
    "list_models",
    "load_model",
    "register_architecture",
    "register_detector",
    "register_model",
    "to_dataframe",
]

# Names whose modules import torch / OpenCV: resolved on first attribute access (PEP 562).
_LAZY = {
    "Analyzer": "emolens._analyzer",
    "analyze": "emolens._api",
    "analyze_batch": "emolens._api",
    "annotate": "emolens._draw",
    "Detector": "emolens.detectors",
    "EmotionModel": "emolens.models._classifier",
    "ModelOutput": "emolens.models._classifier",
    "load_model": "emolens.models._load",
    "VideoAnalysis": "emolens.video",
    "analyze_video": "emolens.video",
    "batch": "emolens._batch",
    "create_detector": "emolens.detectors._factory",
    "BatchReport": "emolens._batch",
    "to_dataframe": "emolens._rows",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the lazily imported ones included (for tab completion)."""
    return sorted({*globals(), *__all__})


def list_detectors() -> list[str]:
    """Names of the registered face detectors (``"auto"`` and ``None`` are also accepted by ``analyze``)."""
    from .detectors import DETECTORS

    return DETECTORS.names()


def list_models() -> list[str]:
    """Names of the registered emotion models."""
    from .models import MODELS

    return MODELS.names()


def register_detector(spec: DetectorSpec, *, overwrite: bool = False) -> DetectorSpec:
    """Make a detector available by ``spec.name`` (an error if the name exists, unless ``overwrite``)."""
    from .detectors import DETECTORS

    return DETECTORS.register(spec, overwrite=overwrite)


def register_architecture(spec: ArchitectureSpec, *, overwrite: bool = False) -> ArchitectureSpec:
    """Make a network architecture available to model specs and cards by ``spec.name``."""
    from .models import ARCHITECTURES

    return ARCHITECTURES.register(spec, overwrite=overwrite)


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    """Make an emotion model available by ``spec.name`` (an error if the name exists, unless ``overwrite``)."""
    from .models import MODELS

    return MODELS.register(spec, overwrite=overwrite)


def download(names: list[str] | None = None) -> list[str]:
    """Fetch the weights of the named detectors/models (all when ``None``) for offline use.

    Returns the local paths. Raises :class:`WeightsError` if a file cannot be fetched.
    """
    from ._weights import fetch
    from .detectors import DETECTORS
    from .models import MODELS

    specs: list[DetectorSpec | ModelSpec] = [*DETECTORS.specs(), *MODELS.specs()]
    if names is not None:
        by_name = {spec.name: spec for spec in specs}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise UnknownNameError("detector or model", unknown[0], sorted(by_name))
        specs = [by_name[n] for n in names]
    return [str(fetch(w)) for spec in specs for w in spec.weights]
