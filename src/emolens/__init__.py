"""emolens: find every face in an image and classify its emotion.

>>> import emolens
>>> result = emolens.analyze("photo.jpg")          # doctest: +SKIP
>>> [(face.label, round(face.confidence, 2)) for face in result.faces]  # doctest: +SKIP

Importing emolens is cheap: torch, OpenCV and the detector backends load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from ._registry import ArchitectureSpec, DetectorSpec, InputSpec, ModelSpec, Registry, WeightsFile
from .errors import (
    DatasetError,
    EmolensError,
    EmolensWarning,
    ImageTooLargeError,
    InternalError,
    InvalidImageError,
    InvalidOptionError,
    InvalidVideoError,
    MissingDependencyError,
    ModelError,
    UnknownNameError,
    WeightsDownloadError,
    WeightsError,
    WeightsIntegrityError,
    WeightsUnavailableError,
)
from .labels import LabelSet
from .types import AnalysisResult, Box, Detection, Emotion, Face, FrameResult, Landmarks, Point, TrackedFace

if TYPE_CHECKING:
    from ._analyzer import Analyzer, Detected
    from ._api import analyze, analyze_batch, clear_cache
    from ._batch import BatchInput, BatchReport, batch, expand_inputs
    from ._crop import face_crop
    from ._draw import annotate
    from ._image import LoadedImage, load_image
    from ._rows import to_dataframe
    from .detectors import Detector, create_detector
    from .models import EmotionModel, ModelOutput, load_model
    from .video import VideoAnalysis, analyze_video

__version__ = "0.1.0"

__all__ = [
    "AnalysisResult",
    "Analyzer",
    "ArchitectureSpec",
    "BatchInput",
    "BatchReport",
    "Box",
    "DatasetError",
    "Detected",
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
    "InternalError",
    "InvalidImageError",
    "InvalidOptionError",
    "InvalidVideoError",
    "LabelSet",
    "Landmarks",
    "LoadedImage",
    "MissingDependencyError",
    "ModelError",
    "ModelOutput",
    "ModelSpec",
    "Point",
    "Registry",
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
    "clear_cache",
    "create_detector",
    "download",
    "expand_inputs",
    "face_crop",
    "list_detectors",
    "list_models",
    "load_image",
    "load_model",
    "register_architecture",
    "register_detector",
    "register_model",
    "to_dataframe",
]

# Names whose modules import torch / OpenCV: resolved on first attribute access (PEP 562).
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "._analyzer": ["Analyzer", "Detected"],
        "._api": ["analyze", "analyze_batch", "clear_cache"],
        "._batch": ["BatchInput", "BatchReport", "batch", "expand_inputs"],
        "._crop": ["face_crop"],
        "._draw": ["annotate"],
        "._image": ["LoadedImage", "load_image"],
        "._rows": ["to_dataframe"],
        ".detectors": ["Detector", "create_detector"],
        ".models": ["EmotionModel", "ModelOutput", "load_model"],
        ".video": ["VideoAnalysis", "analyze_video"],
    },
    __all__,
    submodules=["cli", "detectors", "models", "serve", "training", "video", "weights"],
)


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
    """Fetch the weights of the named detectors/models (all registered ones when ``None``) for offline use.

    A name may also pin an earlier release (``"default@v2"``, or the ``model_id`` a float32 or bf16 result
    recorded): the releases that have left the wheel are downloaded by hash. Returns the local paths. Raises
    :class:`WeightsError` if a file cannot be fetched.
    """
    from .detectors import DETECTORS
    from .models import MODELS, model_versions, pinned_spec
    from .weights import fetch

    specs: list[DetectorSpec | ModelSpec] = [*DETECTORS.specs(), *MODELS.specs()]
    if names is not None:
        by_name = {spec.name: spec for spec in specs}
        chosen: list[DetectorSpec | ModelSpec] = []
        for name in names:
            try:
                chosen.append(by_name[name] if name in by_name else pinned_spec(name))
            except UnknownNameError as unknown:  # the pins' suggestions (the versions of that name) are kept
                known = sorted([*by_name, *model_versions()])
                raise UnknownNameError("detector or model", name, known, unknown.suggestions or None) from None
        specs = chosen
    return [str(fetch(w)) for spec in specs for w in spec.weights]
