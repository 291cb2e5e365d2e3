"""The one preprocessing path shared by training, evaluation and inference, driven by a model's InputSpec.

A face crop is resized to the model's square input size and converted to its colour (grayscale or
RGB), then scaled to [0, 1] and normalised: per image to zero mean and unit variance (emolens' own
models: insensitive to global brightness and contrast, which differ a lot between FER2013 and
photos) or with the model's per-channel mean and std (models trained on ImageNet-style input).
Training applies its augmentation between :func:`resize_crop` and :func:`normalize`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .._registry import InputSpec

__all__ = ["normalize", "preprocess", "resize_crop", "resize_square", "standardize", "to_gray_square"]

_EPS = 1e-3


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """An image (any channels) resized to ``size`` x ``size``: area when shrinking, bilinear when growing."""
    if image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_gray_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 crop (gray or BGR) to a ``size`` x ``size`` uint8 grayscale image."""
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return resize_square(crop, size)


def resize_crop(crop: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A uint8 crop (gray or BGR) as the model's input image: (size, size) gray or (size, size, 3) RGB."""
    if spec.color == "gray":
        return to_gray_square(crop, spec.size)
    rgb = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB) if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    return resize_square(rgb, spec.size)


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Standardise each image of a float batch (N, C, H, W) in [0, 1] to zero mean, unit variance."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    std = images.std(dim=(1, 2, 3), keepdim=True)
    return (images - mean) / (std + _EPS)


def normalize(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Normalise a float batch (N, C, H, W) in [0, 1] as the model expects."""
    if spec.mean is None or spec.std is None:
        return standardize(images)
    mean = torch.tensor(spec.mean, dtype=images.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean) / std


def preprocess(crops: Sequence[np.ndarray], spec: InputSpec) -> torch.Tensor:
    """uint8 face crops (gray or BGR, any size) -> the model's float32 input batch (N, C, size, size)."""
    batch = np.stack([resize_crop(c, spec) for c in crops])
    tensor = torch.from_numpy(batch).float().div_(255.0)
    tensor = tensor.unsqueeze(1) if spec.color == "gray" else tensor.permute(0, 3, 1, 2)
    return normalize(tensor.contiguous(), spec)
