"""The default limits of the pipeline, in a module that imports nothing (the CLI reads them cheaply)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MIN_FACE_SIZE", "MAX_FILE_BYTES", "RAISE_MAX_PIXELS"]

#: Largest image analysed by default: 40 megapixels (120 MB as BGR); ``max_pixels`` raises or lowers it.
DEFAULT_MAX_PIXELS = 40_000_000
#: Largest encoded image file or byte string read (256 MiB).
MAX_FILE_BYTES = 256 << 20
#: Faces whose shorter box side is below this many pixels are dropped.
DEFAULT_MIN_FACE_SIZE = 20
#: The advice ending a too-large-image message (the emolens command, emolens serve and batch tables name their own
#: setting instead).
RAISE_MAX_PIXELS = "raise max_pixels if you trust the input"
