"""Optimizers and learning-rate schedules, chosen by name (``--optimizer``, ``--schedule``).

The defaults (Nesterov SGD with a OneCycle schedule) trained every shipped model; AdamW and a
cosine schedule with linear warm-up are the usual alternatives. Both schedules are stepped once per
batch and their state lives in the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from ..errors import UnknownNameError
from ._config import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, SCHEDULES

__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_schedule"]

ONECYCLE_WARMUP = 0.2  # fraction of steps rising to the peak learning rate
COSINE_WARMUP = 0.05


def build_optimizer(
    name: str, parameters: Iterable[torch.nn.Parameter], *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Nesterov SGD (``"sgd"``) or AdamW (``"adamw"``, with ``momentum`` as its first beta)."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    raise UnknownNameError("optimizer", name, OPTIMIZERS)


def build_schedule(name: str, optimizer: torch.optim.Optimizer, *, lr: float, total_steps: int) -> LRScheduler:
    """A per-step schedule peaking at ``lr``: ``"onecycle"`` or ``"cosine"`` (linear warm-up, then cosine to 0).

    The cosine schedule scales the optimizer's own learning rate, which must already be ``lr``.
    """
    if name == "onecycle":
        return OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=ONECYCLE_WARMUP)
    if name == "cosine":
        warmup = max(1, round(COSINE_WARMUP * total_steps))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return LambdaLR(optimizer, factor)
    raise UnknownNameError("schedule", name, SCHEDULES)
