"""RetinaFace with a MobileNet-0.25 backbone, implemented in torch inside emolens.

Architecture (Deng et al., "RetinaFace: Single-stage Dense Face Localisation in the Wild", 2019):
a MobileNetV1 backbone at width 0.25 gives feature maps at strides 8, 16 and 32; a 3-level feature
pyramid merges them top-down; an SSH context module refines each level; 1x1 heads predict, for
2 anchors per location, a face score, a box and 5 landmarks. The weights are the widely used
``detection_mobilenet0.25_Final.pth`` state dict, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._image import downscale
from .._registry import DetectorSpec
from ..types import Box, Detection, Landmarks
from ..weights import fetch

__all__ = ["RetinaFaceDetector", "RetinaFaceMobileNet"]

_MEAN_BGR = (104.0, 117.0, 123.0)
_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCES = (0.1, 0.2)


def _conv_bn(cin: int, cout: int, stride: int = 1, *, kernel: int = 3, leaky: float | None = 0.0) -> nn.Sequential:
    """Conv (no bias) + BatchNorm, followed by LeakyReLU unless ``leaky`` is None."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


def _depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """MobileNetV1 block: 3x3 depthwise conv + BN + LeakyReLU, 1x1 pointwise conv + BN + LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


class _MobileNetV1(nn.Module):
    """MobileNetV1 x0.25, returning the stride-8, -16 and -32 feature maps (64, 128, 256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1),
            _depthwise_separable(8, 16, 1),
            _depthwise_separable(16, 32, 2),
            _depthwise_separable(32, 32, 1),
            _depthwise_separable(32, 64, 2),
            _depthwise_separable(64, 64, 1),
        )
        self.stage2 = nn.Sequential(
            _depthwise_separable(64, 128, 2), *(_depthwise_separable(128, 128, 1) for _ in range(5))
        )
        self.stage3 = nn.Sequential(_depthwise_separable(128, 256, 2), _depthwise_separable(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c3, c4, c5]


class _FPN(nn.Module):
    """Top-down feature pyramid: 1x1 lateral convs, nearest upsampling, 3x3 merge convs."""

    def __init__(self, in_channels: tuple[int, int, int], out: int = 64) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], out, kernel=1, leaky=leaky)
        self.output2 = _conv_bn(in_channels[1], out, kernel=1, leaky=leaky)
        self.output3 = _conv_bn(in_channels[2], out, kernel=1, leaky=leaky)
        self.merge1 = _conv_bn(out, out, leaky=leaky)
        self.merge2 = _conv_bn(out, out, leaky=leaky)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[2:], mode="nearest"))
        return [p3, p4, p5]


class _SSH(nn.Module):
    """SSH context module: parallel 3x3, 5x5 and 7x7 receptive fields (stacked 3x3 convs), concatenated."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        quarter = channels // 4
        self.conv3X3 = _conv_bn(channels, channels // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(channels, quarter, leaky=leaky)
        self.conv5X5_2 = _conv_bn(quarter, quarter, leaky=None)
        self.conv7X7_2 = _conv_bn(quarter, quarter, leaky=leaky)
        self.conv7x7_3 = _conv_bn(quarter, quarter, leaky=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5_in = self.conv5X5_1(x)
        branch7_in = self.conv7X7_2(branch5_in)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(branch5_in), self.conv7x7_3(branch7_in)], dim=1)
        return F.relu(out)


class _Head(nn.Module):
    """1x1 conv predicting ``values`` numbers per anchor, reshaped to (N, H*W*anchors, values)."""

    def __init__(self, channels: int, anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFaceMobileNet(nn.Module):
    """The network: (N, 3, H, W) mean-subtracted BGR -> box deltas, face probability, landmark deltas."""

    def __init__(self, anchors: int = 2, channels: int = 64) -> None:
        super().__init__()
        self.body = _MobileNetV1()
        self.fpn = _FPN((64, 128, 256), channels)
        self.ssh1, self.ssh2, self.ssh3 = _SSH(channels), _SSH(channels), _SSH(channels)
        self.ClassHead = nn.ModuleList(_Head(channels, anchors, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(channels, anchors, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(channels, anchors, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pyramid = self.fpn(self.body(x))
        levels = [self.ssh1(pyramid[0]), self.ssh2(pyramid[1]), self.ssh3(pyramid[2])]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, levels, strict=True)], dim=1)
        scores = torch.cat([head(f) for head, f in zip(self.ClassHead, levels, strict=True)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, levels, strict=True)], dim=1)
        return boxes, F.softmax(scores, dim=-1), landmarks


def anchor_grid(height: int, width: int) -> torch.Tensor:
    """Anchors (cx, cy, w, h), normalised to the image size, in the heads' output order."""
    rows = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES, strict=True):
        fh, fw = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
        cx = ((xs + 0.5) * stride / width).reshape(-1, 1).expand(-1, len(sizes))
        cy = ((ys + 0.5) * stride / height).reshape(-1, 1).expand(-1, len(sizes))
        sw = torch.tensor([s / width for s in sizes]).expand_as(cx)
        sh = torch.tensor([s / height for s in sizes]).expand_as(cy)
        rows.append(torch.stack([cx, cy, sw, sh], dim=-1).reshape(-1, 4))
    return torch.cat(rows).float()


def decode(
    deltas: torch.Tensor, landmark_deltas: torch.Tensor, anchors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Box corners (x0, y0, x1, y1) and 5 landmarks (x, y), normalised, from predicted offsets."""
    centers = anchors[:, :2] + deltas[:, :2] * _VARIANCES[0] * anchors[:, 2:]
    sizes = anchors[:, 2:] * torch.exp(deltas[:, 2:] * _VARIANCES[1])
    boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    points = landmark_deltas.reshape(-1, 5, 2) * _VARIANCES[0] * anchors[:, None, 2:] + anchors[:, None, :2]
    return boxes, points


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25 on CPU or CUDA.

    Images whose longer side exceeds ``max_side`` are downscaled before detection (faster; small
    faces may be missed); ``max_side=None`` runs at full size. Boxes come back in original pixels.
    """

    def __init__(
        self,
        spec: DetectorSpec,
        *,
        device: str = "cpu",
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        max_side: int | None = 1280,
        **_: Any,
    ) -> None:
        self.name = spec.name
        self.device = torch.device(device)
        state = torch.load(fetch(spec.weights[0]), map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        network = RetinaFaceMobileNet()
        network.load_state_dict(state, strict=True)
        self._net = network.to(self.device).eval()
        self._score_threshold = score_threshold
        self._nms_threshold = nms_threshold
        self._max_side = max_side
        self._anchors: dict[tuple[int, int], torch.Tensor] = {}
        self._lock = threading.Lock()  # guards the anchor cache only; the network is read-only

    def _anchor_grid(self, height: int, width: int) -> torch.Tensor:
        with self._lock:
            grid = self._anchors.get((height, width))
            if grid is None:
                if len(self._anchors) > 32:
                    self._anchors.clear()
                grid = self._anchors[(height, width)] = anchor_grid(height, width).to(self.device)
            return grid

    def detect(self, image: np.ndarray) -> list[Detection]:
        image, scale = downscale(image, self._max_side)
        h, w = image.shape[:2]
        batch = torch.from_numpy(image).to(self.device).permute(2, 0, 1).float()
        batch = (batch - torch.tensor(_MEAN_BGR, device=self.device).view(3, 1, 1)).unsqueeze(0)
        with torch.inference_mode():
            deltas, scores, landmark_deltas = self._net(batch)
        face_scores = scores[0, :, 1]
        keep = face_scores > self._score_threshold
        if not bool(keep.any()):
            return []
        boxes, points = decode(deltas[0][keep], landmark_deltas[0][keep], self._anchor_grid(h, w)[keep])
        size = torch.tensor([w, h], device=boxes.device, dtype=boxes.dtype)
        corners = (boxes.view(-1, 2, 2) * size / scale).view(-1, 4).cpu().numpy()
        landmarks = (points * size / scale).cpu().numpy()
        confidences = face_scores[keep].cpu().numpy()
        xywh = np.column_stack([corners[:, :2], corners[:, 2:] - corners[:, :2]])
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), confidences.tolist(), self._score_threshold, self._nms_threshold)
        detections = []
        for i in np.asarray(kept, dtype=np.int64).reshape(-1):
            x0, y0, x1, y1 = (float(v) for v in corners[i])
            box = Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0))
            detections.append(Detection(box, float(confidences[i]), Landmarks.from_array(landmarks[i])))
        return detections
