"""Knowledge distillation: teach a network to match the softened predictions of trained teachers.

A teacher is a registered model name (``"default"``) or a run folder written by ``emolens train``
(its ``best.safetensors``). Several teachers form an ensemble whose probabilities are averaged,
which is how a single shipped model can learn from models too slow to ship.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models import autocast_for
from ._spec import load_trained

__all__ = ["Teachers", "distillation_loss"]


class Teachers:
    """An ensemble of frozen teachers whose temperature-softened probabilities are averaged."""

    def __init__(self, sources: Sequence[str], device: torch.device, *, amp: bool = True) -> None:
        self.sources = tuple(sources)
        self.device = device
        self.amp = amp
        self.networks = [load_trained(source, device)[1] for source in self.sources]

    def probabilities(self, batch: torch.Tensor, temperature: float) -> torch.Tensor:
        """Mean softmax(logits / temperature) of all teachers for a standardised batch."""
        with torch.inference_mode(), autocast_for(self.device, self.amp):
            probs = [torch.softmax(net(batch).float() / temperature, dim=1) for net in self.networks]
        return torch.stack(probs).mean(0).clone()  # clone: an ordinary tensor usable in autograd


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, scaled by temperature² to keep gradient size."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, teacher_probs, reduction="batchmean") * temperature**2
