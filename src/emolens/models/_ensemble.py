"""An ensemble of registered architectures as one network: the mean of its members' probabilities.

Teachers of different kinds (a VGG trained from FER2013 alone, EfficientNet-Lite networks started from
ImageNet weights) make different mistakes, so their average agrees with people more often than any one
of them (docs/training.md). ``ensemble`` makes such an average an ordinary emolens model: a card names
the ``ensemble`` architecture, each member's registered architecture, options and input size, and one
safetensors file holds every member's tensors (``members.<i>.<name>``). Nothing but registered
architectures is ever built.

The network takes crops at the card's input size and resizes them for a member that reads another size
(bilinear), standardising each image again as emolens' preprocessing does after its resize. Its output is
the log of the mean probability through a square linear layer that starts as the identity with zero bias:
the layer where a prior shift goes (``emolens export --prior-shift``), as in any other model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import torch
from torch import nn

from ._preprocess import standardize

__all__ = ["MAX_MEMBERS", "EnsembleNet"]

#: The most members an ensemble may have (each costs a full forward pass per face).
MAX_MEMBERS = 8


class EnsembleNet(nn.Module):
    """Members of registered architectures, each at its own input size; the log of their mean probability.

    ``members``: one mapping per member with ``architecture`` (a registered name, not ``ensemble``),
    ``options`` (that architecture's options) and ``input_size`` (the crop size it was trained on).
    """

    def __init__(
        self,
        *,
        num_classes: int = 7,
        input_size: int = 48,
        in_channels: int = 1,
        members: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()
        from .._registry import MAX_INPUT_SIZE, MIN_INPUT_SIZE, resolve
        from . import ARCHITECTURES

        if not isinstance(members, Sequence) or not 2 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"members must be a list of 2 to {MAX_MEMBERS} members, not {members!r:.80}")
        networks, sizes = [], []
        for index, member in enumerate(members):
            if not isinstance(member, Mapping) or set(member) != {"architecture", "options", "input_size"}:
                raise ValueError(f"member {index} must name exactly architecture, options and input_size")
            name, options, size = member["architecture"], member["options"], member["input_size"]
            if name == "ensemble" or not isinstance(name, str):
                raise ValueError(f"member {index}: architecture must be a registered name other than ensemble")
            if not isinstance(options, Mapping):
                raise ValueError(f"member {index}: options must be a mapping, not {options!r:.40}")
            if not (isinstance(size, Integral) and MIN_INPUT_SIZE <= int(size) <= MAX_INPUT_SIZE):
                raise ValueError(f"member {index}: input_size must be {MIN_INPUT_SIZE}-{MAX_INPUT_SIZE} pixels")
            if name not in ARCHITECTURES:
                raise ValueError(f"member {index}: no registered architecture {name!r:.40}")
            builder = resolve(ARCHITECTURES.get(name).builder)
            networks.append(
                builder(num_classes=num_classes, input_size=int(size), in_channels=in_channels, **dict(options))
            )
            sizes.append(int(size))
        self.members = nn.ModuleList(networks)
        self.sizes = tuple(sizes)
        self.input_size = int(input_size)
        self.output = nn.Linear(num_classes, num_classes)
        with torch.no_grad():
            self.output.weight.copy_(torch.eye(num_classes))
            self.output.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = []
        for member, size in zip(self.members, self.sizes, strict=True):
            if size != self.input_size:  # the batch comes at the card's input size
                resized = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                batch = standardize(resized)
            else:
                batch = x
            probabilities.append(torch.softmax(member(batch).float(), dim=1))
        log_mean = torch.log(torch.stack(probabilities).mean(dim=0).clamp_min(1e-12))
        # under bf16 autocast in bf16, as every model's output layer (and the same bits as its bf16 inference copy)
        logits: torch.Tensor = self.output(log_mean)
        return logits
