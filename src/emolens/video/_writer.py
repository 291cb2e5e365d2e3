"""Write an annotated copy of a video: boxes, track ids and emotion labels drawn on every frame."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from .._draw import draw_box
from ..errors import InvalidOptionError, InvalidVideoError
from ..labels import display_label
from ..types import FrameResult

__all__ = ["AnnotatedVideoWriter", "draw_frame"]

_GREEN = (80, 200, 80)


def draw_frame(image: np.ndarray, frame: FrameResult) -> np.ndarray:
    """A copy of ``image`` with each tracked face's box, track id, top emotion and probability."""
    canvas = image.copy()
    for face in frame.faces:
        draw_box(canvas, face.box, f"#{face.track_id} {display_label(face.label)} {face.confidence:.0%}", _GREEN)
    return canvas


class AnnotatedVideoWriter:
    """An mp4v video at the input's size and frame rate; use as a context manager.

    A frame of another size than ``size`` (width, height) is scaled to it: OpenCV's writer would drop it
    without a word.
    """

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
            raise InvalidOptionError(
                "this FrameResult carries no image to draw on (analyze_video keeps each frame's image)", option="frame"
            )
        canvas = draw_frame(frame.image, frame)
        if (canvas.shape[1], canvas.shape[0]) != tuple(self.size):
            canvas = cv2.resize(canvas, tuple(self.size), interpolation=cv2.INTER_AREA)
        self._writer.write(canvas)

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()
