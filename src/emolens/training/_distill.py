"""Knowledge distillation: teach a network to match the softened predictions of trained teachers.

A teacher is a registered model name (``"default"``) or a run folder written by ``emolens train``
(its ``best.safetensors``). Several teachers form an ensemble whose probabilities are averaged,
which is how a single shipped model can learn from models too slow to ship. A teacher may take
another input size than its student (a 64x64 teacher for a 48x48 student): each sees the student's
batch resized to its own size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .._registry import InputSpec
from ..errors import InvalidOptionError
from ..models import predict_logits
from ._spec import load_trained

__all__ = ["Teachers", "distillation_loss"]


class Teachers:
    """An ensemble of frozen teachers whose temperature-softened probabilities are averaged.

    ``student_input`` is the input the batches are prepared for: a teacher must take the same colour
    and normalisation (its size may differ), or it is refused here rather than taught from garbage.
    ``tta`` averages the logits on the batch and its mirror image for each teacher whose model ships
    with flip TTA on every face, as the model cards score it (one more forward pass of that teacher per step).
    ``tensors_sha256`` names the tensors each source resolved to: a resumed run compares them, so a
    teacher whose name now means other weights (a new release of ``large``) cannot change mid-run
    (``weights_sha256``, the whole files', for checkpoints written before the tensors were hashed).
    """

    def __init__(
        self,
        sources: Sequence[str],
        device: torch.device,
        *,
        amp: bool = True,
        student_input: InputSpec | None = None,
        tta: bool = False,
    ) -> None:
        self.sources = tuple(sources)
        self.device = device
        self.amp = amp
        loaded = [load_trained(source, device) for source in self.sources]
        for source, trained in zip(self.sources, loaded, strict=True):
            other = trained.spec.input
            if student_input is not None and _normalisation(other) != _normalisation(student_input):
                raise InvalidOptionError(
                    f"teacher {source!r} takes {other.describe()} input, the student {student_input.describe()}: "
                    "distil from a teacher whose input differs from the student's in size at most",
                    option="teacher",
                )
        self.networks = [trained.network for trained in loaded]
        self.sizes = [trained.spec.input.size for trained in loaded]
        self.mirrored = [tta and trained.spec.tta for trained in loaded]
        self.weights_sha256 = tuple(trained.file_sha256 for trained in loaded)
        self.tensors_sha256 = tuple(trained.tensors_sha256 for trained in loaded)

    def probabilities(self, batch: torch.Tensor, temperature: float) -> torch.Tensor:
        """Mean softmax(logits / temperature) of all teachers for a standardised batch (N, C, H, H)."""
        probs = []
        for network, size, mirrored in zip(self.networks, self.sizes, self.mirrored, strict=True):
            seen = batch if batch.shape[-1] == size else _resized(batch, size)
            logits = predict_logits(network, seen, tta=mirrored, amp=self.amp)
            probs.append(torch.softmax(logits / temperature, dim=1))
        return torch.stack(probs).mean(0).clone()  # clone: an ordinary tensor usable in autograd


def _normalisation(spec: InputSpec) -> tuple[object, ...]:
    return spec.color, spec.mean, spec.std


def _resized(batch: torch.Tensor, size: int) -> torch.Tensor:
    """The batch at ``size`` x ``size``, interpolated as preprocessing resizes a crop (area-like when shrinking)."""
    return F.interpolate(batch.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, scaled by temperature² to keep gradient size."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, teacher_probs, reduction="batchmean") * temperature**2
