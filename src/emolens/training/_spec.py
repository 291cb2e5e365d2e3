"""Trained networks for training itself: teachers to distil from and weights to start from.

Both go through the one loading path of :func:`emolens.models.resolve_model` (registered names, cards,
weights files and run folders alike); this module only turns the result into a frozen torch network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .._registry import ModelSpec
from ..errors import WeightsError
from ..models import build_model, prepare_for_inference, resolve_model
from ..weights import sha256_of

__all__ = ["load_trained", "source_weights"]


def _torch_source(source: str | Path) -> tuple[ModelSpec, Path]:
    """The spec and verified weights of a model source, resolved (and hash-checked) once."""
    spec, weights = resolve_model(source)
    if weights is None or spec.runtime != "torch":
        raise WeightsError(
            f"model {str(source)!r} has no emolens (torch) weights to train from; use an emolens model, an "
            "exported card or a run folder",
            filename=str(source),
        )
    return spec, weights


def source_weights(source: str | Path) -> Path:
    """The verified weights file of a model source (registered name, card, weights file or run folder)."""
    return _torch_source(source)[1]


def load_trained(source: str | Path, device: str | torch.device = "cpu") -> tuple[ModelSpec, nn.Module, str]:
    """The spec, a frozen inference network (uncalibrated, for teachers) and the weights' SHA-256 of a model source."""
    spec, weights = _torch_source(source)
    prepared = prepare_for_inference(build_model(spec, weights), device)
    prepared.requires_grad_(False)
    return spec, prepared, sha256_of(weights)
