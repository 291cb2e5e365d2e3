"""EfficientNet-Lite-style network (inverted-residual "MBConv" blocks, ReLU6, no squeeze-excitation).

The Lite variants of EfficientNet (Tan & Le, 2019) drop squeeze-excitation and swish so that they quantise
and run well on CPUs. emolens uses this layout for networks started from ImageNet weights
(``python -m tools.imagenet_init``): a grayscale crop feeds the RGB stem through the stem's filters summed
over the colour channels, which is what copying the gray value into three channels would compute.
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

__all__ = ["MBConvNet"]

#: (expansion, kernel, stride, output channels, repeats) of each stage: EfficientNet-B0's table.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM, _HEAD = 32, 1280
# BatchNorm as the ImageNet weights were trained with it (TensorFlow's epsilon).
_BN_EPS = 1e-3


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=_BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Expand (1x1), depthwise (k x k), project (1x1); a residual sum where shape allows."""

    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [_conv_bn(cin, hidden, 1)]
        layers += [_conv_bn(hidden, hidden, kernel, stride, groups=hidden), _conv_bn(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return x + out if self.residual else out


def _widen(channels: int, width: float) -> int:
    """``channels`` times ``width``, to a multiple of 8 and never more than 10 % below (EfficientNet's rounding)."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class MBConvNet(nn.Module):
    """EfficientNet-Lite0's stages and a linear head; ``depth`` scales each middle stage's repeats and ``width``
    each stage's channels (Lite1 is depth 1.1; Lite2 depth 1.2 and width 1.1). As in the Lite releases, the
    stem and the head keep their 32 and 1280 channels at every width.

    ``stem_stride`` 1 keeps the full resolution of small crops in the first stage: a 48x48 crop then costs
    what a 96x96 one does with the usual stride 2, without resizing it.
    """

    def __init__(
        self,
        *,
        num_classes: int = 7,
        input_size: int = 48,
        in_channels: int = 1,
        depth: float = 1.0,
        width: float = 1.0,
        stem_stride: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not 0.5 <= float(depth) <= 2.0:
            raise ValueError(f"depth must be from 0.5 to 2, not {depth!r:.40}")
        if not 0.5 <= float(width) <= 2.0:
            raise ValueError(f"width must be from 0.5 to 2, not {width!r:.40}")
        if not (isinstance(stem_stride, Integral) and stem_stride in (1, 2)):
            raise ValueError(f"stem_stride must be 1 or 2, not {stem_stride!r:.40}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be from 0 to below 1, not {dropout!r:.40}")
        if input_size < 16 * int(stem_stride):
            raise ValueError(f"input size {input_size} is too small: at least {16 * int(stem_stride)} pixels")
        self.stem: nn.Sequential = _conv_bn(in_channels, _STEM, 3, int(stem_stride))
        blocks: list[nn.Module] = []
        cin = _STEM
        last = len(STAGES) - 1
        for index, (expansion, kernel, stride, cout, repeats) in enumerate(STAGES):
            # Lite variants keep the first and last stage at one block (as their ImageNet weights have it).
            count = repeats if index in (0, last) else int(-(-repeats * float(depth) // 1))
            cout = _widen(cout, float(width))
            for block in range(count):
                blocks.append(MBConv(cin, cout, expansion, kernel, stride if block == 0 else 1))
                cin = cout
        self.blocks: nn.Sequential = nn.Sequential(*blocks)
        self.head: nn.Sequential = _conv_bn(cin, _HEAD, 1)
        self.classifier: nn.Sequential = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(_HEAD, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.blocks(self.stem(x)))
        pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1)
        logits: torch.Tensor = self.classifier(pooled)
        return logits
