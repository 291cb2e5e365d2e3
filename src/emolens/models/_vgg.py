"""VGG-style convolutional network for grayscale face crops (48x48; 64x64 in `large`, or any size >= 2**stages).

Stages of 3x3 conv + BatchNorm + ReLU followed by max-pooling, then a two-layer classifier.
Simple, fast on CPU with bf16 + channels_last, and strong on FER2013 for its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import nn

from ..errors import InvalidOptionError

__all__ = ["VGGNet", "check_whole_numbers"]


def check_whole_numbers(name: str, values: Sequence[object], most: int, *, at_least_one: bool = False) -> None:
    """ValueError unless every one of ``values`` is a whole number (not a bool) from 1 to ``most``, and, with
    ``at_least_one``, there is one: the check of an architecture's widths and counts."""
    if (at_least_one and not values) or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and 1 <= int(v) <= most for v in values
    ):
        raise ValueError(f"{name} must be whole numbers from 1 to {most}, not {values!r:.80}")


class VGGNet(nn.Module):
    """``len(widths)`` stages of conv layers, each stage halving the resolution.

    ``convs_per_stage`` is one count for every stage or one count per stage (cheap fast models
    use a single conv in the high-resolution stages, where convolutions cost the most).
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 256),
        *,
        convs_per_stage: int | Sequence[int] = 2,
        hidden: int = 256,
        num_classes: int = 7,
        input_size: int = 48,
        in_channels: int = 1,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        one_count = isinstance(convs_per_stage, (int, Integral))  # numpy integers too
        counts: list[int] = [int(convs_per_stage)] * len(widths) if one_count else list(convs_per_stage)  # type: ignore[arg-type]
        if len(counts) != len(widths):
            raise ValueError(f"convs_per_stage has {len(counts)} entries for {len(widths)} stages")
        for name, values, most in (
            ("widths", widths, 1 << 16),
            ("convs_per_stage", counts, 16),
            ("hidden", [hidden], 1 << 16),
        ):
            check_whole_numbers(name, values, most)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be from 0 to below 1, not {dropout!r:.40}")
        for width, count in zip(widths, counts, strict=True):
            for _ in range(count):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = input_size // 2 ** len(widths)
        if side < 1:
            raise InvalidOptionError(
                f"input size {input_size} is smaller than the {2 ** len(widths)} pixels that {len(widths)} stages "
                "halve: use a larger input or fewer stages",
                option="input-size",
            )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels * side * side, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes) for a batch of shape (N, 1, H, W)."""
        logits: torch.Tensor = self.classifier(self.features(x))
        return logits
