"""Read frames from a video file, a camera index, or any iterable of images."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .._header import IMAGE_SUFFIXES
from .._image import load_image
from .._limits import DEFAULT_MAX_PIXELS, RAISE_MAX_PIXELS
from ..errors import ImageTooLargeError, InvalidVideoError

__all__ = ["Frame", "VideoSource", "open_source"]

VideoSource = Any  # str | os.PathLike | int (camera index) | Iterable[np.ndarray]


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    time: float
    image: np.ndarray


class _Capture:
    """Frames of an OpenCV capture (file or camera), released when iteration ends.

    Frames larger than ``max_pixels`` are refused at open, from the size the stream declares: a 1.6 MB video
    of 16000x16000 frames cost 2 GB when its first frame was decoded and then refused."""

    def __init__(self, source: str | int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.source = source
        if isinstance(source, int) and source < 0:
            raise InvalidVideoError(f"camera index must be 0 or more, got {source}", source=source)
        if isinstance(source, str):
            path = Path(source)
            if path.is_dir():
                raise InvalidVideoError(f"{source} is a folder, not a video file", source=source)
            if not path.is_file():
                raise InvalidVideoError(f"video file not found: {source}", source=source)
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise InvalidVideoError(
                    f"{source} is an image, not a video: use `emolens analyze` (or emolens.analyze) for images",
                    source=source,
                )
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            what = f"camera {source}" if isinstance(source, int) else f"video {source}"
            hint = "is a camera connected, and free?" if isinstance(source, int) else "is it a video OpenCV can decode?"
            raise InvalidVideoError(f"cannot open {what}; {hint}", source=source)
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > max_pixels:
            capture.release()
            raise ImageTooLargeError(
                f"{source}: its frames are {width}x{height} pixels ({width * height / 1e6:.3g} megapixels), over the "
                f"limit of {max_pixels / 1e6:g} megapixels; shrink the video, or {RAISE_MAX_PIXELS}",
                source=source,
            )
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count: int | None = count if isinstance(source, str) and count > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        try:
            while True:
                ok, image = self._capture.read()
                if not ok:
                    if index == 0:
                        raise InvalidVideoError(f"no frame could be read from {self.source}", source=self.source)
                    return
                yield Frame(index, index / self.fps, image)
                index += 1
        finally:
            self._capture.release()


class _Images:
    """Frames from an iterable of images (arrays, paths, ...), at a nominal frame rate."""

    def __init__(self, images: Iterable[Any], fps: float, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._images = images
        self.fps = fps
        self.max_pixels = max_pixels
        self.frame_count: int | None = len(images) if hasattr(images, "__len__") else None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self._images):
            yield Frame(index, index / self.fps, load_image(image, max_pixels=self.max_pixels).bgr)


def open_source(source: VideoSource, *, fps: float = 30.0, max_pixels: int = DEFAULT_MAX_PIXELS) -> _Capture | _Images:
    """A frame iterator with ``fps`` and ``frame_count`` (None when unknown, e.g. cameras); a file or camera
    whose frames are larger than ``max_pixels`` is refused before its first frame is decoded."""
    if isinstance(source, (_Capture, _Images)):
        return source
    if isinstance(source, bool):
        raise InvalidVideoError("video source must be a path, a camera index or an iterable of images", source=source)
    if isinstance(source, int):
        return _Capture(source, max_pixels)
    if isinstance(source, (str, Path)):
        return _Capture(str(source), max_pixels)
    if isinstance(source, Iterable) and not isinstance(source, (bytes, np.ndarray)):
        return _Images(source, fps, max_pixels)
    raise InvalidVideoError(
        f"unsupported video source {type(source).__name__}; pass a file path, a camera index or an iterable of images",
        source=type(source).__name__,
    )
