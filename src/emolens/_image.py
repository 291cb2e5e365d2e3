"""Turn any supported input into one validated BGR uint8 array.

All input validation lives here, so the rest of the pipeline can trust its image:
C-contiguous, ``uint8``, shape (H, W, 3), BGR channel order, at least 1x1 pixel, at most
``max_pixels`` pixels. Limits are checked before any work that depends on them: a file must be a
regular file of at most :data:`MAX_FILE_BYTES`; an encoded image's claimed size is read from its
header (:mod:`emolens._header`) before it is decoded, so a small file claiming a huge image costs
nothing; only JPEG, PNG, WebP, BMP, TIFF and GIF reach a decoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from ._checks import check_int
from ._files import check_regular_file
from ._header import FORMATS, MalformedImage, sniff
from ._limits import DEFAULT_MAX_PIXELS, MAX_FILE_BYTES, RAISE_MAX_PIXELS
from .errors import ImageTooLargeError, InvalidImageError, InvalidOptionError

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_FILE_BYTES", "ColorOrder", "ImageInput", "LoadedImage", "downscale", "load_image"]

ColorOrder = Literal["bgr", "rgb"]
ImageInput = Any  # str | os.PathLike[str] | bytes | np.ndarray | PIL.Image.Image (Pillow is optional)

_MAX_PATH_CHARS = 4096
_EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how to turn the stored pixels upright
#: The largest buffer a decoder may allocate besides the image (a TIFF strip or tile), or 8 bytes per allowed pixel.
_MAX_DECODE_BUFFER_BYTES = 512 << 20


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


def load_image(image: ImageInput, *, color: ColorOrder = "bgr", max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load a path, encoded bytes, numpy array or PIL image as BGR uint8.

    ``color`` states the channel order of numpy arrays ("bgr", OpenCV's convention, or "rgb");
    it is ignored for files, bytes and PIL images, whose order is known. Images of more than
    ``max_pixels`` pixels are refused (:class:`ImageTooLargeError`) before they are decoded.
    Raises :class:`InvalidImageError` with a message that says what was wrong.
    """
    if color not in ("bgr", "rgb"):
        raise InvalidOptionError(f"color must be 'bgr' or 'rgb', got {color!r:.40}", option="color")
    max_pixels = check_int("max_pixels", max_pixels, minimum=1)
    if isinstance(image, (str, os.PathLike)):
        path = _path_text(image)
        return LoadedImage(_read_file(path, max_pixels), source=path)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = _as_bytes(image)
        return LoadedImage(_decode(data, "the given bytes", max_pixels))
    if isinstance(image, np.ndarray):
        return LoadedImage(_from_array(image, color, max_pixels))
    if _is_pil_image(image):
        return LoadedImage(_from_pil(image, max_pixels))
    raise InvalidImageError(
        f"unsupported image type {type(image).__name__}; pass a file path, encoded bytes, "
        "a numpy array (H, W), (H, W, 3) or (H, W, 4), or a PIL image",
        source=type(image).__name__,
    )


def _as_bytes(image: bytes | bytearray | memoryview) -> bytes:
    """The bytes of a bytes-like input, its size checked before it is copied (a released memoryview is an
    InvalidImageError)."""
    try:
        size = image.nbytes if isinstance(image, memoryview) else len(image)
    except ValueError as exc:  # a released memoryview
        raise InvalidImageError(f"cannot read the given {type(image).__name__}: {exc}", source="bytes") from None
    if size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"the given bytes are over {MAX_FILE_BYTES >> 20} MiB", source="bytes")
    try:
        return image if isinstance(image, bytes) else bytes(image)
    except (ValueError, TypeError) as exc:  # released meanwhile, or a view that is not of bytes
        raise InvalidImageError(f"cannot read the given {type(image).__name__}: {exc}", source="bytes") from None


def _path_text(image: str | os.PathLike[Any]) -> str:
    """The path as text (a PathLike may return bytes), refusing absurdly long ones before the OS sees them."""
    try:
        path = os.fsdecode(os.fspath(image))
    except Exception as exc:  # a path-like's own __fspath__ may raise anything
        raise InvalidImageError(f"invalid image path: {exc}", source=repr(image)[:200]) from None
    if len(path) > _MAX_PATH_CHARS or "\0" in path:
        shown = path[:80] + "..." if len(path) > 80 else path
        raise InvalidImageError(f"invalid image path {shown!r} ({len(path)} characters)", source=shown)
    return path


def _read_file(path: str, max_pixels: int) -> np.ndarray:
    """The decoded image of a regular file (never a directory, FIFO or device, never more than MAX_FILE_BYTES)."""
    size = check_regular_file(path, lambda message: InvalidImageError(message, source=path), "image file")
    if size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{path} is {size >> 20} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit", source=path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidImageError(f"cannot read {path}: {exc.strerror or exc}", source=path) from None
    return _decode(data, path, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{what}: empty image ({width}x{height} pixels)", source=what)
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what}: {width}x{height} pixels ({width * height / 1e6:.3g} megapixels) is over the limit of "
            f"{max_pixels / 1e6:g} megapixels; shrink it, or {RAISE_MAX_PIXELS}",
            source=what,
        )


def _decode(data: bytes, what: str, max_pixels: int) -> np.ndarray:
    if not data:
        raise InvalidImageError(f"{what} is empty (0 bytes); expected an encoded image", source=what)
    try:
        header = sniff(data)
    except MalformedImage as exc:
        raise InvalidImageError(f"cannot decode {what}: {exc}; not decoded", source=what) from None
    if header is None:
        raise InvalidImageError(
            f"cannot decode {what} as an image: it is not {', '.join(FORMATS[:-1])} or {FORMATS[-1]}, "
            "or its header is corrupt",
            source=what,
        )
    _check_pixels(header.width, header.height, max_pixels, what)
    budget = max(_MAX_DECODE_BUFFER_BYTES, 8 * max_pixels)
    if header.buffer_bytes > budget:
        raise ImageTooLargeError(
            f"{what}: decoding its {header.format} strips or tiles needs {header.buffer_bytes / 2**20:,.0f} MB (more "
            f"than {budget / 2**20:,.0f} MB); convert it, or {RAISE_MAX_PIXELS}",
            source=what,
        )
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        decoded = None
    if decoded is None or decoded.size == 0:
        raise InvalidImageError(f"cannot decode {what} as an image; the file is corrupt or truncated", source=what)
    _check_pixels(decoded.shape[1], decoded.shape[0], max_pixels, what)  # a header that lied
    return np.ascontiguousarray(decoded)


def _from_pil(image: Any, max_pixels: int) -> np.ndarray:
    """A PIL image (possibly lazily loaded, possibly truncated) as upright BGR, its size checked before loading."""
    try:
        width, height = image.size
    except Exception:
        raise InvalidImageError("this PIL image has no readable size", source="PIL") from None
    _check_pixels(int(width), int(height), max_pixels, "PIL image")
    try:
        from PIL import ImageOps

        # upright as its EXIF orientation says, as a path or bytes of the same photo are decoded (OpenCV does);
        # only then, as exif_transpose copies the image even when there is nothing to turn
        if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image) or image
        rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # Pillow's decoders raise many types for truncated or corrupt data
        raise InvalidImageError(f"cannot load this PIL image: {type(exc).__name__}: {exc}", source="PIL") from None
    return _from_array(rgb, "rgb", max_pixels)


def _from_array(array: np.ndarray, color: ColorOrder, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
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
    _check_pixels(int(array.shape[1]), int(array.shape[0]), max_pixels, "image array")
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
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale
