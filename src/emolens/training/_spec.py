"""Trained networks for training itself: teachers to distil from and weights to start from.

Both go through the one loading path of :func:`emolens.models.resolve_model` (registered names, cards,
weights files and run folders alike); this module only turns the result into a frozen torch network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .._registry import ModelSpec
from ..errors import WeightsError
from ..models import build_model, prepare_for_inference, resolve_model
from ..weights import sha256_of

__all__ = ["Trained", "load_trained", "source_weights", "tensors_sha256"]


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


class Trained(NamedTuple):
    """A frozen inference network (uncalibrated, for teachers) and what identifies its weights."""

    spec: ModelSpec
    network: nn.Module
    file_sha256: str  # the weights file, metadata (calibration, names) included
    tensors_sha256: str  # the tensors alone: what the network computes with


def load_trained(source: str | Path, device: str | torch.device = "cpu") -> Trained:
    """The spec, frozen inference network and weight digests of a model source."""
    spec, weights = _torch_source(source)
    network = build_model(spec, weights)
    digest = tensors_sha256(network.state_dict())
    prepared = prepare_for_inference(network, device)
    prepared.requires_grad_(False)
    return Trained(spec, prepared, sha256_of(weights), digest)


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values: unchanged when only file metadata changes
    (a card measured again rewrites the calibration temperatures, which a teacher does not use)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
