"""Typed results returned by emolens.

Every result is a frozen dataclass with ``to_dict()``; the shape of a result never depends on
the input (a face without landmarks has ``landmarks=None``, an image without faces has
``faces=()``), so downstream code can rely on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .labels import CANONICAL, FER2013, Emotion

__all__ = ["AnalysisResult", "Box", "Detection", "Emotion", "Face", "FrameResult", "Landmarks", "Point", "TrackedFace"]


def _emotion(label: str) -> Emotion | None:
    return Emotion(label) if label in CANONICAL else None


def _top(probabilities: tuple[float, ...]) -> int:
    return max(range(len(probabilities)), key=probabilities.__getitem__)


@dataclass(frozen=True, slots=True)
class Point:
    """A 2-D point in original-image pixels."""

    x: float
    y: float

    def to_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y}


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Five facial landmarks, as given by detectors such as YuNet and RetinaFace.

    "Left" and "right" are from the viewer's point of view (image left / image right).
    """

    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point

    @classmethod
    def from_array(cls, points: Any) -> Landmarks:
        """Build from anything indexable as 5 (x, y) pairs (e.g. a (5, 2) numpy array)."""
        pts = [Point(float(p[0]), float(p[1])) for p in points]
        if len(pts) != 5:
            raise ValueError(f"expected 5 landmark points, got {len(pts)}")
        return cls(*pts)

    def __iter__(self) -> Iterator[Point]:
        yield from (self.left_eye, self.right_eye, self.nose, self.mouth_left, self.mouth_right)

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            "left_eye": self.left_eye.to_dict(),
            "right_eye": self.right_eye.to_dict(),
            "nose": self.nose.to_dict(),
            "mouth_left": self.mouth_left.to_dict(),
            "mouth_right": self.mouth_right.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in original-image pixels: top-left corner plus size."""

    x: int
    y: int
    width: int
    height: int

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right/bottom exclusive."""
        return (self.x, self.y, self.x + self.width, self.y + self.height)

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.width / 2, self.y + self.height / 2)

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0.0 when they do not overlap)."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.width, other.x + other.width)
        y1 = min(self.y + self.height, other.y + other.height)
        inter = max(0, x1 - x0) * max(0, y1 - y0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True, slots=True)
class Face:
    """One analysed face.

    Attributes:
        box: where the face is, in original-image pixels.
        score: detector confidence in [0, 1] (1.0 for a fallback face).
        probabilities: one probability per label of the model, in ``labels`` order, summing to 1.
        landmarks: five landmarks when the detector provides them, else ``None``.
        fallback: ``True`` when no face was detected and the whole image was classified instead.
        labels: the model's labels (FER2013's 7 for emolens' own models).
        valence, arousal: in [-1, 1] for models that predict them (e.g. ``hsemotion-b0-va``), else ``None``.

    ``label`` (a ``str``) is always the top label; ``emotion`` is the same as an :class:`Emotion`, or
    ``None`` when the model's labels are custom, so type checkers make code that relies on the enum
    handle models with their own labels.
    """

    box: Box
    score: float
    probabilities: tuple[float, ...]
    landmarks: Landmarks | None = None
    fallback: bool = False
    labels: tuple[str, ...] = FER2013.labels
    valence: float | None = None
    arousal: float | None = None

    def __post_init__(self) -> None:
        if len(self.probabilities) != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} probabilities, got {len(self.probabilities)}")

    @property
    def label(self) -> str:
        """The most probable label."""
        return self.labels[_top(self.probabilities)]

    @property
    def emotion(self) -> Emotion | None:
        """The most probable label as an :class:`Emotion` (``None`` for a custom label)."""
        return _emotion(self.label)

    @property
    def confidence(self) -> float:
        """Probability of the top label."""
        return max(self.probabilities)

    @property
    def scores(self) -> Mapping[str, float]:
        """Probabilities keyed by label, in the model's order (``Emotion`` members work as keys too)."""
        return dict(zip(self.labels, self.probabilities, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.to_dict(),
            "score": self.score,
            "label": self.label,
            "emotion": None if self.emotion is None else self.emotion.value,
            "confidence": self.confidence,
            "probabilities": self.scores,
            "valence": self.valence,
            "arousal": self.arousal,
            "landmarks": None if self.landmarks is None else self.landmarks.to_dict(),
            "fallback": self.fallback,
        }


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """Everything :func:`emolens.analyze` found in one image.

    Attributes:
        faces: analysed faces, largest first.
        image_width, image_height: size of the input image in pixels.
        detector: name of the detector actually used (``"none"`` when detection was skipped).
        model: name of the emotion model used (``"default"``, or ``"default@v4"`` when pinned).
        timings_ms: wall time per stage ("load", "detect", "classify", "total") in milliseconds; a
            measurement, not part of the answer, so equality and hashing leave it out.
        source: file path of the input, when it was given as a path.
        model_id: which weights answered: ``<weights file stem>@<first 12 hex digits of their sha256>``
            (``"emolens-consensus-default-v5@1bf7de45b8de"``); pass it as ``model=`` to get the same answers
            after an upgrade.
        detector_id: the detector likewise (``"yunet@85260e29ac9c"``; its name when it has no weights file).
    """

    faces: tuple[Face, ...]
    image_width: int
    image_height: int
    detector: str
    model: str
    timings_ms: Mapping[str, float] = field(default_factory=dict, compare=False)
    source: str | None = None
    model_id: str = ""
    detector_id: str = ""

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the input image."""
        return (self.image_width, self.image_height)

    @property
    def dominant_emotion(self) -> Emotion | None:
        """Top emotion of the largest face, or ``None`` when there are no faces (or its label is custom)."""
        return self.faces[0].emotion if self.faces else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "image": {"width": self.image_width, "height": self.image_height},
            "detector": self.detector,
            "model": self.model,
            "detector_id": self.detector_id,
            "model_id": self.model_id,
            "faces": [face.to_dict() for face in self.faces],
            "timings_ms": dict(self.timings_ms),
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict`; keyword arguments go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def _repr_html_(self) -> str:
        """Jupyter shows the annotated image (for results of a file) and each face's probabilities."""
        from ._display import result_html

        return result_html(self)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame with one row per face (the columns of ``emolens batch``); needs pandas."""
        from ._rows import to_dataframe

        return to_dataframe(self)


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found by a detector, before emotion classification (original-image pixels)."""

    box: Box
    score: float
    landmarks: Landmarks | None = None


@dataclass(frozen=True, slots=True)
class TrackedFace:
    """A face in a video frame, tied to a track that follows the same person across frames.

    ``probabilities`` are smoothed over the track's recent frames (exponential moving average);
    the unsmoothed per-frame result stays available as ``raw``.
    """

    track_id: int
    raw: Face
    probabilities: tuple[float, ...]

    @property
    def box(self) -> Box:
        return self.raw.box

    @property
    def labels(self) -> tuple[str, ...]:
        return self.raw.labels

    @property
    def label(self) -> str:
        """Top label after smoothing."""
        return self.raw.labels[_top(self.probabilities)]

    @property
    def emotion(self) -> Emotion | None:
        """Top label after smoothing as an :class:`Emotion` (``None`` for a custom label)."""
        return _emotion(self.label)

    @property
    def confidence(self) -> float:
        return max(self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "label": self.label,
            "emotion": None if self.emotion is None else self.emotion.value,
            "probabilities": dict(zip(self.labels, self.probabilities, strict=True)),
            "raw": self.raw.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One analysed video frame: its index and time, and the tracked faces in it.

    ``image`` is the decoded BGR frame (for drawing); collectors do not keep it.
    """

    index: int
    time: float
    faces: tuple[TrackedFace, ...]
    width: int
    height: int
    image: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": self.time,
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }
