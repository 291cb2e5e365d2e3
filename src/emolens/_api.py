"""``emolens.analyze()``: one call, no setup, backed by a cached Analyzer per configuration."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from ._analyzer import Analyzer
from ._checks import check_options
from ._image import ColorOrder, ImageInput
from ._limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_FACE_SIZE
from .detectors import Detector
from .models import ModelSource
from .types import AnalysisResult

__all__ = ["analyze", "analyze_batch", "clear_cache", "get_analyzer"]

#: How many Analyzers ``analyze()`` keeps (least recently used first out): each holds a model (~20 MB).
MAX_CACHED_ANALYZERS = 8

_analyzers: OrderedDict[tuple[object, ...], Analyzer] = OrderedDict()
_lock = threading.Lock()


def get_analyzer(
    detector: str | Detector | None = "auto",
    model: ModelSource = "default",
    device: str = "cpu",
    detector_options: Mapping[str, Any] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    precision: str = "auto",
) -> Analyzer:
    """The shared Analyzer for this configuration, built on first use (thread-safe, bounded LRU).

    Detector and model objects are keyed by identity: passing the same instance again reuses the
    Analyzer built around it (the cache holds it, so the identity cannot be reused meanwhile).
    """
    options = check_options("detector_options", detector_options)
    detector_key = detector if detector is None or isinstance(detector, str) else ("object", id(detector))
    model_key = str(model) if isinstance(model, (str, os.PathLike)) else ("object", id(model))
    # Options are plain values (numbers, strings, tuples); their sorted repr identifies them.
    key = (detector_key, model_key, str(device), repr(sorted(options.items())), max_pixels, precision)
    with _lock:
        analyzer = _analyzers.get(key)
        if analyzer is not None:
            _analyzers.move_to_end(key)
            return analyzer
    # Built outside the lock: loading a model must not block every other thread's analyze().
    built = Analyzer(
        detector, model, device=device, detector_options=options, max_pixels=max_pixels, precision=precision
    )
    with _lock:
        analyzer = _analyzers.setdefault(key, built)
        _analyzers.move_to_end(key)
        while len(_analyzers) > MAX_CACHED_ANALYZERS:
            _analyzers.popitem(last=False)
        return analyzer


def clear_cache() -> None:
    """Forget what this process cached: the shared Analyzers (frees their models), the ``auto``
    detector choice and remembered download failures (call it after downloading weights)."""
    from .detectors import reset_auto_choice
    from .weights import forget_failures

    with _lock:
        _analyzers.clear()
    reset_auto_choice()
    forget_failures()


def analyze(
    image: ImageInput,
    *,
    detector: str | Detector | None = "auto",
    model: ModelSource = "default",
    color: ColorOrder = "bgr",
    fallback: bool = True,
    min_face_size: int = DEFAULT_MIN_FACE_SIZE,
    device: str = "cpu",
    detector_options: Mapping[str, Any] | None = None,
    precision: str = "auto",
) -> AnalysisResult:
    """Find every face in ``image`` and classify its emotion.

    Args:
        image: file path, encoded bytes (JPEG, PNG, ...), numpy array ((H, W), (H, W, 3) or
            (H, W, 4); uint8 or float in [0, 1]) or PIL image.
        detector: registered detector name, ``"auto"`` (YuNet, else RetinaFace-MobileNet, else Haar) or ``None``
            to classify the whole image as one face (for pre-cropped faces).
        model: registered emotion-model name, or the card (``.json``) or weights path of a model
            written by ``emolens export``.
        color: channel order of numpy arrays, ``"bgr"`` (OpenCV) or ``"rgb"``.
        fallback: when no face is found, classify the whole image as one face (``Face.fallback``).
        min_face_size: ignore detected faces smaller than this many pixels.
        device: torch device for the emotion model.
        detector_options: keyword arguments for the detector's builder, e.g. ``{"max_side": 320}`` to
            detect on a downscaled copy (faster on large images; very small faces may be missed).
        precision: ``"auto"`` (bf16 where the CPU has it natively), ``"float32"`` or ``"int8"`` (the int8
            graph of ``default`` and ``fast``); see :class:`Analyzer`.

    Returns:
        AnalysisResult: the faces found, largest first; ``faces`` is empty only when ``fallback=False``
        and no face was found.

    Raises:
        InvalidImageError: the input is not a readable image.
        UnknownNameError: no detector or model has that name.
        WeightsError: weights could not be fetched or failed verification.
    """
    return get_analyzer(detector, model, device, detector_options, precision=precision).analyze(
        image, color=color, fallback=fallback, min_face_size=min_face_size
    )


def analyze_batch(
    images: Iterable[ImageInput],
    *,
    detector: str | Detector | None = "auto",
    model: ModelSource = "default",
    color: ColorOrder = "bgr",
    fallback: bool = True,
    min_face_size: int = DEFAULT_MIN_FACE_SIZE,
    device: str = "cpu",
    detector_options: Mapping[str, Any] | None = None,
    precision: str = "auto",
) -> list[AnalysisResult]:
    """Like :func:`analyze` for several images, classifying all faces in one batch."""
    return get_analyzer(detector, model, device, detector_options, precision=precision).analyze_batch(
        images, color=color, fallback=fallback, min_face_size=min_face_size
    )
