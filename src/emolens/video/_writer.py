"""Write an annotated copy of a video: boxes, track ids and emotion labels drawn on every frame."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from ..errors import InvalidVideoError
from ..types import FrameResult

__all__ = ["AnnotatedVideoWriter", "draw_frame"]

_GREEN, _BLACK = (80, 200, 80), (0, 0, 0)


def draw_frame(image: np.ndarray, frame: FrameResult) -> np.ndarray:
    """A copy of ``image`` with each tracked face's box, track id, top emotion and probability."""
    canvas = image.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    thickness = max(1, round(scale * 2))
    for face in frame.faces:
        x0, y0, x1, y1 = face.box.xyxy
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), _GREEN, thickness)
        text = f"#{face.track_id} {face.emotion.label()} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(canvas.shape[0] - 1, y1 + th + 4)
        cv2.rectangle(canvas, (x0, ty - th - base), (x0 + tw + 4, ty + base), _GREEN, -1)
        cv2.putText(canvas, text, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _BLACK, thickness, cv2.LINE_AA)
    return canvas


class AnnotatedVideoWriter:
    """An mp4v video at the input's size and frame rate; use as a context manager."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise InvalidVideoError(
                f"cannot write video {self.path}; check the folder and the .mp4 suffix", source=path
            )
        self.size = size

    def write(self, frame: FrameResult) -> None:
        if frame.image is None:
            raise ValueError("this FrameResult carries no image to draw on")
        self._writer.write(draw_frame(frame.image, frame))

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()
