"""Analyzer: one detector + one emotion model, and the image -> faces -> emotions pipeline."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import check_bool, check_int, check_number, check_options
from ._crop import eye_angle, face_crop, whole_image_crop
from ._device import resolve_device
from ._image import ColorOrder, ImageInput, LoadedImage, load_image
from ._limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_FACE_SIZE
from .detectors import DETECTORS, Detector, create_detector
from .errors import EmolensError, InvalidOptionError, ModelError
from .models import EmotionModel, ModelSource, load_model
from .types import AnalysisResult, Box, Detection, Face, Landmarks

__all__ = ["DEFAULT_MIN_FACE_SIZE", "MAX_MARGIN", "Analyzer", "Detected"]

#: The largest crop margin accepted: a face crop at most three times the box's side.
MAX_MARGIN = 2.0


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A face waiting for classification."""

    detection: Detection
    crop: np.ndarray
    fallback: bool


@dataclass(frozen=True, slots=True)
class Detected:
    """An image after :meth:`Analyzer.detect`: its faces found and cropped, not yet classified.

    It keeps the image's size and source and the crops (at most 1,024 pixels a side), not the image itself,
    so many can wait for one forward pass without holding their decoded images."""

    width: int
    height: int
    source: str | None
    candidates: list[_Candidate]
    timings_ms: Mapping[str, float]


class Analyzer:
    """Detects faces and classifies their emotions; build once, call many times, share across threads.

    Args:
        detector: a registered detector name, ``"auto"`` (the most accurate one available), ``None``
            to skip detection (the whole image is one face), or any object with a ``detect`` method.
        model: a registered emotion-model name, the card or weights path of a model written by
            ``emolens export``, a run folder of ``emolens train``, or an ``EmotionModel``.
        device: torch device for the emotion model ("cpu", "cuda", "cuda:1", ...).
        fallback: classify the whole image as one face when no face is found.
        min_face_size: drop detected faces whose shorter side is smaller (pixels).
        align: rotate each crop so the eyes are level, when the detector gives landmarks.
        margin: enlarge each square crop by this fraction of its side (default: the model's input spec).
        max_pixels: refuse images larger than this many pixels (read from a file's header before it is
            decoded; ``ImageTooLargeError``). Default 40 megapixels.
        precision: how emolens' own models compute: ``"auto"`` (bf16 where the device has it natively),
            ``"float32"`` (the same answers on every host) or ``"int8"`` (the int8 ONNX graph of ``default``
            and ``fast``; see :data:`emolens.models.PRECISIONS`).
        detector_options: passed to the detector's builder when ``detector`` is a name, e.g.
            ``{"max_side": 320}`` to detect on a downscaled copy of large images (every built-in detector: default 1280)
            (faster; faces much smaller than 1/30 of the image side may be missed).
    """

    def __init__(
        self,
        detector: str | Detector | None = "auto",
        model: ModelSource = "default",
        *,
        device: str = "cpu",
        fallback: bool = True,
        min_face_size: int = DEFAULT_MIN_FACE_SIZE,
        align: bool = True,
        margin: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detector_options: Mapping[str, Any] | None = None,
        precision: str = "auto",
    ) -> None:
        # Every argument is checked before anything is loaded: a bad one fails at once, naming itself.
        resolve_device(device)
        options = check_options("detector_options", detector_options)
        self.fallback = check_bool("fallback", fallback)
        self.min_face_size = check_int("min_face_size", min_face_size)
        self.align = check_bool("align", align)
        if margin is not None:
            margin = check_number("margin", margin, minimum=0.0, maximum=MAX_MARGIN)
        self.max_pixels = check_int("max_pixels", max_pixels, minimum=1)
        # The detector first: fetching its weights is what most often fails, and fails faster than building a model.
        self.detector: Detector | None = create_detector(detector, device=device, **options)
        name = self.detector_name
        #: Which detector answers: ``<name>@<sha256 prefix of its weights>`` for a registered one, else its name.
        self.detector_id = DETECTORS.get(name).identity if name in DETECTORS else name
        self.model: EmotionModel = load_model(model, device=device, precision=precision)
        self.margin = self.model.spec.input.margin if margin is None else margin

    @property
    def detector_name(self) -> str:
        """Name of the detector in use ("none" when detection is skipped)."""
        return self.detector.name if self.detector is not None else "none"

    def __repr__(self) -> str:
        return (
            f"Analyzer(detector={self.detector_name!r}, model={self.model.name!r}, device={str(self.model.device)!r})"
        )

    def analyze(
        self,
        image: ImageInput,
        *,
        color: ColorOrder = "bgr",
        fallback: bool | None = None,
        min_face_size: int | None = None,
    ) -> AnalysisResult:
        """Find and classify every face of one image."""
        return self.analyze_batch([image], color=color, fallback=fallback, min_face_size=min_face_size)[0]

    def analyze_batch(
        self,
        images: Iterable[ImageInput],
        *,
        color: ColorOrder = "bgr",
        fallback: bool | None = None,
        min_face_size: int | None = None,
    ) -> list[AnalysisResult]:
        """Analyse several images, classifying all their faces in one batched forward pass.

        Each result's ``timings_ms["classify"]`` is its share of the batch's classification time.
        """
        fallback = self.fallback if fallback is None else check_bool("fallback", fallback)
        min_size = self.min_face_size if min_face_size is None else check_int("min_face_size", min_face_size)
        if isinstance(images, (str, bytes, bytearray, memoryview, np.ndarray)) or not isinstance(images, Iterable):
            raise InvalidOptionError(
                f"analyze_batch takes a list of images, got {type(images).__name__}; for one image use analyze()",
                option="images",
            )
        images = list(images)  # a generator (e.g. Path.glob) is read once
        return self.classify(
            [self.detect(image, color=color, fallback=fallback, min_face_size=min_size) for image in images]
        )

    def detect(
        self,
        image: ImageInput,
        *,
        color: ColorOrder = "bgr",
        fallback: bool | None = None,
        min_face_size: int | None = None,
    ) -> Detected:
        """The first stage of :meth:`analyze`: load the image and find its faces (crops cut, not classified).

        With :meth:`classify`, the stages can run in different threads (video detects the next frame while
        this one is classified); ``classify([detect(image)])`` is ``[analyze(image)]``.
        """
        fallback = self.fallback if fallback is None else check_bool("fallback", fallback)
        min_size = self.min_face_size if min_face_size is None else check_int("min_face_size", min_face_size)
        t0 = time.perf_counter()
        img = load_image(image, color=color, max_pixels=self.max_pixels)
        t1 = time.perf_counter()
        found = self._candidates(img, fallback, min_size)
        t2 = time.perf_counter()
        return Detected(img.width, img.height, img.source, found, {"load": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3})

    def classify(self, detected: Sequence[Detected]) -> list[AnalysisResult]:
        """The second stage of :meth:`analyze`: classify the faces of detected images in one forward pass."""
        candidates = [d.candidates for d in detected]
        timings = [dict(d.timings_ms) for d in detected]
        t0 = time.perf_counter()
        crops = [c.crop for found in candidates for c in found]
        output = self.model.predict_output(crops)
        probabilities = output.probabilities
        classify_ms = (time.perf_counter() - t0) * 1e3

        results = []
        offset = 0
        for image, found, timing in zip(detected, candidates, timings, strict=True):
            faces = tuple(
                Face(
                    box=c.detection.box,
                    score=c.detection.score,
                    probabilities=tuple(float(p) for p in probabilities[offset + i]),
                    landmarks=c.detection.landmarks,
                    fallback=c.fallback,
                    labels=self.model.labels,
                    valence=None if output.valence is None else float(output.valence[offset + i]),
                    arousal=None if output.arousal is None else float(output.arousal[offset + i]),
                )
                for i, c in enumerate(found)
            )
            offset += len(found)
            timing["classify"] = classify_ms * len(found) / max(1, len(crops))
            timing["total"] = sum(timing.values())
            results.append(
                AnalysisResult(
                    faces=faces,
                    image_width=image.width,
                    image_height=image.height,
                    detector=self.detector_name,
                    model=self.model.name,
                    timings_ms=timing,
                    source=image.source,
                    model_id=self.model.identity,
                    detector_id=self.detector_id,
                )
            )
        return results

    def warmup(self) -> None:
        """Run the pipeline once on a synthetic image so the first real call is not slower."""
        rng = np.random.default_rng(0)
        self.analyze(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), fallback=True)

    def _candidates(self, img: LoadedImage, fallback: bool, min_size: int) -> list[_Candidate]:
        detections: list[Detection] = []
        if self.detector is not None:
            try:
                detections = _checked(self.detector.detect(img.bgr), self.detector_name)
            except EmolensError:
                raise
            except Exception as exc:  # a third-party backend failing on this image
                raise ModelError(
                    f"detector {self.detector_name!r} failed on this image: {exc}", component=self.detector_name
                ) from exc
        found = []
        for det in detections:
            box = _clip(det.box, img.width, img.height)
            if box is None or min(box.width, box.height) < min_size:
                continue
            angle = eye_angle(det) if self.align else 0.0
            # Crops come from the detector's box (a face at the edge keeps its shape), unless the box is
            # far larger than the image, which no real face is: then from the part inside the image.
            source = det.box if max(det.box.width, det.box.height) <= 2 * max(img.width, img.height) else box
            crop = face_crop(img.bgr, source, margin=self.margin, angle=angle)
            found.append(_Candidate(Detection(box, det.score, det.landmarks), crop, fallback=False))
        # Largest first; equal sizes top to bottom, left to right, so the order never depends on the order a
        # detector happened to return them in (OpenCV's Haar cascade varies it from call to call under threads).
        found.sort(key=lambda c: (-c.detection.box.area, c.detection.box.y, c.detection.box.x, -c.detection.score))
        if not found and (fallback or self.detector is None):
            whole = Detection(Box(0, 0, img.width, img.height), 1.0)
            found.append(_Candidate(whole, whole_image_crop(img.bgr), fallback=self.detector is not None))
        return found


def _checked(detections: object, detector: str) -> list[Detection]:
    """A detector's output as Detections with whole-pixel boxes and finite scores, or an error naming the detector.

    Custom detectors may give numpy or float coordinates: they are rounded to whole pixels here.
    """
    if not isinstance(detections, (list, tuple)):
        raise ModelError(
            f"detector {detector!r} returned {type(detections).__name__} {detections!r:.60}; a detector's detect() "
            "must return a list of emolens.Detection",
            component=detector,
        )
    checked = []
    for item in detections:
        box = getattr(item, "box", None)
        if not isinstance(item, Detection) or not isinstance(box, Box):
            raise ModelError(
                f"detector {detector!r} returned {type(item).__name__} {item!r:.60} among its faces; a detector's "
                "detect() must return a list of emolens.Detection",
                component=detector,
            )
        values = (box.x, box.y, box.width, box.height, item.score)
        points = [] if not isinstance(item.landmarks, Landmarks) else [c for p in item.landmarks for c in (p.x, p.y)]
        finite = all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (*values, *points))
        if not finite or not (item.landmarks is None or isinstance(item.landmarks, Landmarks)):
            raise ModelError(
                f"detector {detector!r} returned a face with box {values[:4]}, score {item.score!r:.20} and "
                f"landmarks {type(item.landmarks).__name__}; boxes and scores must be finite numbers",
                component=detector,
            )
        whole = Box(*(round(float(v)) for v in values[:4]))
        checked.append(Detection(whole, float(item.score), item.landmarks))
    return checked


def _clip(box: Box, width: int, height: int) -> Box | None:
    """``box`` clipped to the image, or ``None`` when nothing of it is inside."""
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(width, box.x + box.width), min(height, box.y + box.height)
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(x0, y0, x1 - x0, y1 - y0)
