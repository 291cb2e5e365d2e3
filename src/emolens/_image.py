"""Turn any supported input into one validated BGR uint8 array.

All input validation lives here, so the rest of the pipeline can trust its image:
C-contiguous, ``uint8``, shape (H, W, 3), BGR channel order, at least 1x1 pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from .errors import InvalidImageError

__all__ = ["ColorOrder", "ImageInput", "LoadedImage", "downscale", "load_image"]

ColorOrder = Literal["bgr", "rgb"]
ImageInput = Any  # str | os.PathLike[str] | bytes | np.ndarray | PIL.Image.Image (Pillow is optional)

_MAX_PIXELS = 20_000 * 20_000


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """A decoded image in BGR uint8 and, when read from a file, its path."""

    bgr: np.ndarray
    source: str | None = None

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])


def load_image(image: ImageInput, *, color: ColorOrder = "bgr") -> LoadedImage:
    """Load a path, encoded bytes, numpy array or PIL image as BGR uint8.

    ``color`` states the channel order of numpy arrays ("bgr", OpenCV's convention, or "rgb");
    it is ignored for files, bytes and PIL images, whose order is known.
    Raises :class:`InvalidImageError` with a message that says what was wrong.
    """
    if color not in ("bgr", "rgb"):
        raise InvalidImageError(f"color must be 'bgr' or 'rgb', got {color!r}", source=color)
    if isinstance(image, (str, os.PathLike)):
        return LoadedImage(_read_file(Path(image)), source=str(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return LoadedImage(_decode(bytes(image), what="the given bytes"))
    if isinstance(image, np.ndarray):
        return LoadedImage(_from_array(image, color))
    if _is_pil_image(image):
        rgb = np.asarray(image.convert("RGB"))
        return LoadedImage(_from_array(rgb, "rgb"))
    raise InvalidImageError(
        f"unsupported image type {type(image).__name__}; pass a file path, encoded bytes, "
        "a numpy array (H, W), (H, W, 3) or (H, W, 4), or a PIL image",
        source=type(image).__name__,
    )


def _read_file(path: Path) -> np.ndarray:
    if not path.exists():
        raise InvalidImageError(f"image file not found: {path}", source=str(path))
    if path.is_dir():
        raise InvalidImageError(f"{path} is a directory, not an image file", source=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"cannot read {path}: {exc.strerror}", source=str(path)) from None
    return _decode(data, what=str(path))


def _decode(data: bytes, *, what: str) -> np.ndarray:
    if not data:
        raise InvalidImageError(f"{what} is empty (0 bytes); expected an encoded image", source=what)
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None:
        raise InvalidImageError(
            f"cannot decode {what} as an image; it is corrupt or not in a format OpenCV reads "
            "(JPEG, PNG, BMP, WebP, TIFF)",
            source=what,
        )
    return np.ascontiguousarray(decoded)


def _from_array(array: np.ndarray, color: ColorOrder) -> np.ndarray:
    shape = array.shape
    if array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InvalidImageError(
            f"image array has shape {shape}; expected (H, W) gray, (H, W, 3) colour or (H, W, 4) with alpha",
            source="array",
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidImageError(f"image array is empty (shape {shape})", source="array")
    if array.shape[0] * array.shape[1] > _MAX_PIXELS:
        raise InvalidImageError(f"image of {shape[1]}x{shape[0]} pixels is too large to analyse", source="array")
    array = _to_uint8(array)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.shape[2] == 4:
        code = cv2.COLOR_RGBA2BGR if color == "rgb" else cv2.COLOR_BGRA2BGR
        return cv2.cvtColor(np.ascontiguousarray(array), code)
    if color == "rgb":
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidImageError("image array contains NaN or infinite values", source="array")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InvalidImageError(
                f"float image values must lie in [0, 1], found [{low:.3g}, {high:.3g}]; "
                "divide by 255 or pass a uint8 array",
                source="array",
            )
        return (array * 255.0 + 0.5).astype(np.uint8)
    raise InvalidImageError(
        f"unsupported image dtype {array.dtype}; use uint8 (0-255) or float in [0, 1]", source="array"
    )


def _is_pil_image(obj: object) -> bool:
    """True for a PIL image, without importing Pillow when the caller never uses it."""
    module = type(obj).__module__
    return module.startswith("PIL.") and hasattr(obj, "convert")


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` shrunk so its longer side is at most ``max_side`` (unchanged if None), and the scale used."""
    height, width = image.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return image, 1.0
    scale = max_side / max(height, width)
    size = (round(width * scale), round(height * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale
