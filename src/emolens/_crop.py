"""Cut face crops out of an image: square, clipped-safe, optionally rotated so the eyes are level.

One function serves every detector. Parts of a square that fall outside the image are filled by
replicating the border, so faces at the image edge keep their aspect ratio.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .types import Box, Detection

__all__ = ["eye_angle", "face_crop"]


def eye_angle(detection: Detection) -> float:
    """Angle in degrees of the line from the image-left eye to the image-right eye (0 if unknown)."""
    if detection.landmarks is None:
        return 0.0
    left, right = detection.landmarks.left_eye, detection.landmarks.right_eye
    return math.degrees(math.atan2(right.y - left.y, right.x - left.x))


def face_crop(image: np.ndarray, box: Box, *, margin: float = 0.0, angle: float = 0.0) -> np.ndarray:
    """A square crop centred on ``box``, ``margin`` (fraction of the side) larger, rotated by ``angle``.

    The crop keeps the image's resolution (its side is the box's longer side plus margin), so the
    classifier's own resize does the downscaling with proper anti-aliasing.
    """
    cx, cy = box.center
    side = max(1, round(max(box.width, box.height) * (1 + margin)))
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] += np.array([side / 2 - cx, side / 2 - cy])
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
