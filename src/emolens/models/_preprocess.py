"""The one preprocessing path shared by training, evaluation and inference.

A face crop becomes a grayscale square of the model's input size, then each image is
standardised to zero mean and unit variance. Per-image standardisation makes the models
insensitive to global brightness and contrast, which differ a lot between FER2013 and photos.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = ["crops_to_tensor", "standardize", "to_gray_square"]

_EPS = 1e-3


def to_gray_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 crop (gray or BGR) to a ``size`` x ``size`` uint8 grayscale image."""
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if crop.shape[:2] != (size, size):
        shrinking = crop.shape[0] > size or crop.shape[1] > size
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return crop


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Standardise each image of a float batch (N, 1, H, W) in [0, 1] to zero mean, unit variance."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    std = images.std(dim=(1, 2, 3), keepdim=True)
    return (images - mean) / (std + _EPS)


def crops_to_tensor(crops: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Turn uint8 face crops into the model's standardised input batch (N, 1, size, size)."""
    batch = np.stack([to_gray_square(c, size) for c in crops])
    tensor = torch.from_numpy(batch).unsqueeze(1).float().div_(255.0)
    return standardize(tensor)
