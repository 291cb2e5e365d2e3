"""ResNet-style network laid out as dlib's face-recognition ResNet, so it can start from those weights.

dlib's ``dlib_face_recognition_resnet_model_v1`` (Davis King, 2017; public domain) learned faces from about
three million photos: a start that knows faces, where ImageNet weights know objects
(``python -m tools.face_init`` converts it). Its layout differs from torchvision's ResNets in three ways this
module keeps: the 7x7 stem and the strided convs have no padding, a block that halves the resolution adds a
2x2 average-pooled copy of its input (zero-padded to the new channel count) instead of a 1x1 conv, and
where the two halves differ by a pixel (odd sides) they are added over the overlap, the larger one's
remainder kept. A grayscale crop feeds the RGB stem through its filters summed over the colour channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

from ._vgg import check_whole_numbers

__all__ = ["FaceResNet"]


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    """A 3x3 conv (no padding when strided, as dlib has it) and its BatchNorm."""
    return [nn.Conv2d(cin, cout, 3, stride, 1 if stride == 1 else 0, bias=True), nn.BatchNorm2d(cout)]


def add_overlapping(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` for (N, C, H, W) tensors that may differ in C, H or W: the sum has the larger of each side,
    and where only one of them reaches, its value (the other counts as zero)."""
    if a.shape == b.shape:
        return a + b
    channels, height, width = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))

    def grown(x: torch.Tensor) -> torch.Tensor:
        return functional.pad(x, (0, width - x.shape[3], 0, height - x.shape[2], 0, channels - x.shape[1]))

    return grown(a) + grown(b)


def _side_after(input_size: int, stages: int) -> int:
    """The side of the last stage's output, or 0 where a layer would get less than its window."""
    side = (input_size - 7) // 2 + 1 if input_size >= 7 else 0  # the stem conv
    side = (side - 3) // 2 + 1 if side >= 3 else 0  # its 3x3 max-pooling
    for _ in range(stages - 1):  # each strided block: its 2x2 pooling's output is the larger
        side = (side - 2) // 2 + 1 if side >= 3 else 0
    return side


def _smallest_input(stages: int) -> int | None:
    """The smallest input side that reaches the last of ``stages`` stages (None above 4096 pixels)."""
    return next((size for size in range(7, 4097) if _side_after(size, stages) >= 1), None)


class ResidualBlock(nn.Module):
    """conv, BN, ReLU, conv, BN, plus the input (average-pooled when the block halves the resolution); ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, stride), nn.ReLU(inplace=True), *_conv_bn(cout, cout, 1))
        self.shortcut: nn.Module = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.relu(add_overlapping(self.body(x), self.shortcut(x)))


class FaceResNet(nn.Module):
    """A 7x7 stride-2 stem and 3x3 stride-2 max-pooling, then ``len(widths)`` stages of residual blocks, each
    stage after the first opening with a block that halves the resolution; global average pooling and a linear
    head. The defaults are dlib's network (29 convs, 5.6M parameters; 0.51 GFLOPs at 150x150, 0.28 at 112).
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 256, 256),
        *,
        blocks: Sequence[int] = (3, 4, 3, 3, 1),
        num_classes: int = 7,
        input_size: int = 112,
        in_channels: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(f"blocks has {len(blocks)} entries for {len(widths)} stages")
        for name, values, most in (("widths", widths, 1 << 12), ("blocks", blocks, 16)):
            check_whole_numbers(name, values, most, at_least_one=True)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be from 0 to below 1, not {dropout!r:.40}")
        smallest = _smallest_input(len(widths))
        if smallest is None:
            raise ValueError(f"{len(widths)} stages halve a crop of up to 4096 pixels to nothing: use fewer stages")
        if input_size < smallest:
            raise ValueError(f"input size {input_size} is too small for {len(widths)} stages: at least {smallest}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, int(widths[0]), 7, 2, 0, bias=True),
            nn.BatchNorm2d(int(widths[0])),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        layers: list[nn.Module] = []
        cin = int(widths[0])
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for index in range(int(count)):
                layers.append(ResidualBlock(cin, int(width), 2 if stage > 0 and index == 0 else 1))
                cin = int(width)
        self.blocks = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (N, last width) the head reads."""
        return torch.flatten(functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes) for a batch of shape (N, in_channels, H, W)."""
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits
