"""YuNet (OpenCV Zoo): small (230 KB, bundled), accurate on real photos, five landmarks per face.

Two engines run the same graph and give the same faces: ONNX Runtime (about twice as fast on the
CPU, so the default wherever onnxruntime is installed) and OpenCV's built-in ``cv2.FaceDetectorYN``.
With onnxruntime, the graph's outputs are turned into faces here, as ``cv2.FaceDetectorYN`` does it.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .._image import downscale
from .._registry import DetectorSpec
from ..errors import EmolensWarning, InvalidImageError, InvalidOptionError, MissingDependencyError, ModelError
from ..types import Box, Detection, Landmarks
from ..weights import fetch

__all__ = ["ENGINES", "YuNetDetector"]

#: ``engine`` values: ``"auto"`` is ``"onnxruntime"`` where it is installed, else ``"opencv"``.
ENGINES = ("auto", "onnxruntime", "opencv")

#: The graph's strides: one anchor per cell of the 8-, 16- and 32-pixel grids of the input.
_STRIDES = (8, 16, 32)


class YuNetDetector:
    """YuNet with a score threshold of 0.8 and NMS at IoU 0.3.

    Images whose longer side exceeds ``max_side`` are downscaled for detection (boxes are mapped
    back to original pixels); ``max_side=None`` always runs at full size. ``engine`` picks what
    runs the graph (:data:`ENGINES`); :attr:`engine` says which one does.
    """

    def __init__(
        self,
        spec: DetectorSpec,
        *,
        device: str = "cpu",
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = 1280,
        engine: str = "auto",
        **_: Any,
    ) -> None:
        if engine not in ENGINES:
            raise InvalidOptionError(
                f"detector option 'engine' of {spec.name!r} must be one of {', '.join(map(repr, ENGINES))}, "
                f"got {engine!r:.40}",
                option="engine",
            )
        self.name = spec.name
        self._max_side = max_side
        self._thresholds = (score_threshold, nms_threshold, top_k)
        path = fetch(spec.weights[0])
        self._session: Any = None
        if engine != "opencv":
            try:
                self._session, self._input, self._outputs = _onnxruntime_session(path)
            except Exception as exc:  # no onnxruntime, or one that cannot run this graph
                if engine == "onnxruntime":
                    if isinstance(exc, (MissingDependencyError, ModelError)):
                        raise
                    raise ModelError(f"onnxruntime cannot run {path.name}: {exc}", component=spec.name) from None
                if not isinstance(exc, MissingDependencyError):
                    warnings.warn(
                        f"emolens: YuNet runs on OpenCV, at about half the speed: onnxruntime cannot run {path.name} "
                        f"({exc}); reinstall onnxruntime, or pass detector_options={{'engine': 'opencv'}}",
                        EmolensWarning,
                        stacklevel=2,
                    )
        #: what runs the graph: ``"onnxruntime"`` or ``"opencv"``
        self.engine = "opencv" if self._session is None else "onnxruntime"
        if self._session is None:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)
            self._lock = threading.Lock()  # FaceDetectorYN keeps the input size between calls

    def detect(self, image: np.ndarray) -> list[Detection]:
        # Not detectors._base.detect_downscaled: that maps whole-pixel boxes back (an error of up to 1/scale
        # pixels); YuNet's rows are floats, mapped back here before they are rounded.
        if image.ndim != 3 or image.shape[2] != 3:  # both engines read three channels
            raise InvalidImageError(f"YuNet takes a BGR image of shape (height, width, 3), not {image.shape}")
        image, scale = downscale(image, self._max_side)
        faces = self._run_onnxruntime(image) if self._session is not None else self._run_opencv(image)
        height, width = image.shape[:2]
        to_original = np.array([scale] * 14 + [1.0], dtype=np.float32)  # boxes and landmarks, not the score
        detections = []
        for row in faces:
            if not _plausible(row, width, height):
                continue
            row = row / to_original
            x, y, w, h = (float(v) for v in row[:4])
            # YuNet lists the subject's right eye first, which is the eye on the image's left.
            landmarks = Landmarks.from_array(row[4:14].reshape(5, 2))
            box = Box(round(x), round(y), round(w), round(h))
            detections.append(Detection(box, float(row[14]), landmarks))
        return detections

    def _run_opencv(self, image: np.ndarray) -> np.ndarray:
        with self._lock:
            self._net.setInputSize((image.shape[1], image.shape[0]))
            _, faces = self._net.detect(image)
        return np.zeros((0, 15), np.float32) if faces is None else np.asarray(faces)

    def _run_onnxruntime(self, image: np.ndarray) -> np.ndarray:
        """Rows of x, y, w, h, five landmarks (x, y), score: the layout ``cv2.FaceDetectorYN`` returns."""
        score_threshold, nms_threshold, top_k = self._thresholds
        height, width = image.shape[:2]
        if not height or not width:
            return np.zeros((0, 15), np.float32)
        # The graph halves its input five times: zero-pad the bottom and right to a multiple of 32.
        padded = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
        for channel, plane in enumerate(cv2.split(image)):  # contiguous planes: faster than a strided transpose
            padded[0, channel, :height, :width] = plane
        outputs = dict(zip(self._outputs, self._session.run(None, {self._input: padded}), strict=True))
        rows = [
            _decode(outputs, stride, padded.shape[3] // stride, score_threshold)
            for stride in _STRIDES  # per stride: cls, obj (N, 1), bbox (N, 4), kps (N, 10), N = grid cells
        ]
        faces: np.ndarray = np.concatenate(rows)
        faces = faces[np.isfinite(faces).all(axis=1)]  # a box size of exp(large) is inf: no face to keep
        if not len(faces):
            return faces
        boxes, scores = np.trunc(faces[:, :4]).tolist(), faces[:, 14].tolist()  # OpenCV's NMS sees whole pixels
        keep = cv2.dnn.NMSBoxes(boxes, scores, score_threshold, nms_threshold, top_k=top_k)
        kept: np.ndarray = faces[np.asarray(keep, dtype=np.int64).reshape(-1)]
        return kept


def _onnxruntime_session(path: Path) -> tuple[Any, str, list[str]]:
    """A session for the graph at ``path``, its input's name and its outputs' names; ModelError unless the graph
    takes an image of any size and gives the outputs :func:`_decode` reads."""
    from .._onnx import onnx_session

    session = onnx_session(path, feature="YuNet on onnxruntime (detector option engine)")
    (image,) = session.get_inputs()
    outputs = [output.name for output in session.get_outputs()]
    expected = {f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in _STRIDES}
    if any(isinstance(side, int) for side in image.shape[2:]) or not expected <= set(outputs):
        raise ModelError(
            f"{path.name} is not YuNet with an open input size (input {image.shape}, outputs {outputs}); "
            "python -m tools.yunet_any_size writes one",
            component="yunet",
        )
    return session, str(image.name), outputs


def _decode(outputs: dict[str, np.ndarray], stride: int, columns: int, score_threshold: float) -> np.ndarray:
    """The anchors of one stride scoring at least ``score_threshold``, as face rows.

    Each grid cell predicts a class and an objectness probability (the score is their geometric mean),
    its box centre as an offset from the cell's corner and its size as a log, both in strides, and the
    five landmarks as offsets from the corner.
    """
    score = np.sqrt(np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1) * np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1))
    (cells,) = np.nonzero(score >= score_threshold)
    corner = np.stack([cells % columns, cells // columns], axis=1).astype(np.float32)  # (x, y) of each cell
    box = outputs[f"bbox_{stride}"][0, cells]
    centre = (corner + box[:, :2]) * stride
    with np.errstate(over="ignore"):  # a garbage size overflows to inf; such rows are dropped
        size = np.exp(box[:, 2:4]) * stride
    points = (outputs[f"kps_{stride}"][0, cells].reshape(-1, 5, 2) + corner[:, None, :]) * stride
    return np.column_stack([centre - size / 2, size, points.reshape(-1, 10), score[cells]]).astype(np.float32)


def _plausible(row: np.ndarray, width: int, height: int) -> bool:
    """False for garbage rows: inf/NaN boxes (OpenCV now and then returns them for inputs of a few dozen pixels)
    and boxes off the image."""
    if not np.isfinite(row).all():
        return False
    x, y, w, h = (float(v) for v in row[:4])
    return w >= 1 and h >= 1 and x < width and y < height and x + w > 0 and y + h > 0
