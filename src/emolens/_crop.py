"""Cut face crops out of an image: square, clipped-safe, optionally rotated so the eyes are level.

One function serves every detector. Parts of a square that fall outside the image are filled by
replicating the border, so faces at the image edge keep their aspect ratio.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .types import Box, Detection

__all__ = ["eye_angle", "face_crop", "whole_image_crop"]


def eye_angle(detection: Detection) -> float:
    """Angle in degrees of the line from the image-left eye to the image-right eye (0 if unknown)."""
    if detection.landmarks is None:
        return 0.0
    left, right = detection.landmarks.left_eye, detection.landmarks.right_eye
    return math.degrees(math.atan2(right.y - left.y, right.x - left.x))


#: Crops with a longer side are shrunk to it first: emotion models take 48 to 260 pixels, and OpenCV's warp
#: cannot address images of 32,767 pixels or more.
MAX_CROP_SIDE = 1024


def face_crop(image: np.ndarray, box: Box, *, margin: float = 0.0, angle: float = 0.0) -> np.ndarray:
    """A square crop centred on ``box``, ``margin`` (fraction of the side) larger, rotated by ``angle``.

    The crop keeps the image's resolution (its side is the box's longer side plus margin, up to
    :data:`MAX_CROP_SIDE`), so the classifier's own resize does the downscaling with proper
    anti-aliasing. Only the region the rotated square can reach is read, so the cost and memory
    depend on the face, not on the image.
    """
    height, width = image.shape[:2]
    cx, cy = box.center
    side = max(1, round(max(box.width, box.height) * (1 + margin)))
    reach = side * 0.7072 + 2  # half the square's diagonal, plus the bilinear neighbours
    x0 = min(max(math.floor(cx - reach), 0), width - 1)
    y0 = min(max(math.floor(cy - reach), 0), height - 1)
    x1 = max(min(math.ceil(cx + reach), width), x0 + 1)
    y1 = max(min(math.ceil(cy + reach), height), y0 + 1)
    region = image[y0:y1, x0:x1]
    cx, cy, scale = cx - x0, cy - y0, 1.0
    if side > MAX_CROP_SIDE:
        scale = MAX_CROP_SIDE / side
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        cx, cy, side = cx * scale, cy * scale, MAX_CROP_SIDE
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] += np.array([side / 2 - cx, side / 2 - cy])
    return cv2.warpAffine(region, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def whole_image_crop(image: np.ndarray) -> np.ndarray:
    """The whole image as the crop of a fallback face: itself up to :data:`MAX_CROP_SIDE` pixels a side, else
    shrunk to it (aspect kept), as face crops are, so a crop waiting to be classified never holds a
    40-megapixel image (a server batch of 32 such images held 3.8 GB before the first was classified)."""
    height, width = image.shape[:2]
    if max(height, width) <= MAX_CROP_SIDE:
        return image
    scale = MAX_CROP_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
