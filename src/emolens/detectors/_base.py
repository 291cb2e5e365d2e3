"""The interface every face detector implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Detection

__all__ = ["Detector"]


@runtime_checkable
class Detector(Protocol):
    """Finds faces in a BGR uint8 image of shape (H, W, 3).

    Implementations must be safe to call from several threads (hold a lock around any
    per-call state) and return boxes in the pixels of the image they were given.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in ``image``, in any order."""
        ...
