"""Knowledge distillation: teach a network to match the softened predictions of trained teachers.

A teacher is a registered model name (``"default"``) or a run folder written by ``emolens train``
(its ``best.safetensors``). Several teachers form an ensemble whose probabilities are averaged,
which is how a single shipped model can learn from models too slow to ship.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from .._weights import fetch
from ..errors import DatasetError
from ..models._network import autocast_for, build_network, load_state, prepare_for_inference
from ._spec import run_spec

__all__ = ["Teachers", "distillation_loss"]


def _load_teacher(source: str, device: torch.device) -> nn.Module:
    """A frozen inference network from a run folder or a registered model name."""
    run = Path(source)
    if run.is_dir():
        config, weights = run / "config.json", run / "best.safetensors"
        if not config.is_file() or not weights.is_file():
            raise DatasetError(f"teacher {source!r} is not a finished `emolens train` run folder", path=run)
        spec = run_spec(json.loads(config.read_text()))
    else:
        spec = models.MODELS.get(source)
        if not spec.weights:
            raise DatasetError(f"teacher model {source!r} has no trained weights")
        weights = fetch(spec.weights[0])
    network = build_network(spec)
    load_state(network, weights)
    prepared = prepare_for_inference(network, device)
    prepared.requires_grad_(False)
    return prepared


class Teachers:
    """An ensemble of frozen teachers whose temperature-softened probabilities are averaged."""

    def __init__(self, sources: Sequence[str], device: torch.device, *, amp: bool = True) -> None:
        self.sources = tuple(sources)
        self.device = device
        self.amp = amp
        self.networks = [_load_teacher(source, device) for source in self.sources]

    def probabilities(self, batch: torch.Tensor, temperature: float) -> torch.Tensor:
        """Mean softmax(logits / temperature) of all teachers for a standardised batch."""
        with torch.inference_mode(), autocast_for(self.device, self.amp):
            probs = [torch.softmax(net(batch).float() / temperature, dim=1) for net in self.networks]
        return torch.stack(probs).mean(0).clone()  # clone: an ordinary tensor usable in autograd


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, scaled by temperature² to keep gradient size."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, teacher_probs, reduction="batchmean") * temperature**2
