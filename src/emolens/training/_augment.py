"""Batched data augmentation on torch tensors.

Working on whole batches avoids per-image Python loops and data-loader workers, which matters on
a 2-core CPU. All randomness comes from an explicit generator so a resumed run repeats exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment", "random_erase"]


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def augment(images: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random affine (rotate 15 deg, scale 15%, shift 12%), horizontal flip and gamma.

    ``images`` is a float batch (N, 1, H, W) in [0, 1]; ``strength`` scales every range.
    """
    n = images.shape[0]
    angle = _uniform(n, -15.0, 15.0, gen) * strength * math.pi / 180
    scale = 1 + _uniform(n, -0.15, 0.15, gen) * strength
    shift = _uniform(2 * n, -0.12, 0.12, gen).view(n, 2) * 2 * strength  # grid coords span [-1, 1]
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gamma = torch.exp(_uniform(n, -0.35, 0.35, gen) * strength).view(n, 1, 1, 1)
    return out.clamp_(1e-4, 1.0).pow_(gamma)


def random_erase(
    images: torch.Tensor, gen: torch.Generator, p: float = 0.5, area: tuple[float, float] = (0.02, 0.2)
) -> torch.Tensor:
    """Replace one random rectangle per image (with probability ``p``) by Gaussian noise.

    Applied after standardisation, so noise has the statistics of the image.
    """
    n, _, h, w = images.shape
    target = _uniform(n, *area, gen) * h * w
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), gen))
    eh = (target * aspect).sqrt().clamp(1, h)
    ew = (target / aspect).sqrt().clamp(1, w)
    y0 = torch.rand(n, generator=gen) * (h - eh)
    x0 = torch.rand(n, generator=gen) * (w - ew)
    apply = torch.rand(n, generator=gen) < p
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    mask = (
        (ys >= y0.view(n, 1, 1))
        & (ys < (y0 + eh).view(n, 1, 1))
        & (xs >= x0.view(n, 1, 1))
        & (xs < (x0 + ew).view(n, 1, 1))
        & apply.view(n, 1, 1)
    ).unsqueeze(1)
    noise = torch.randn(images.shape, generator=gen)
    return torch.where(mask, noise, images)
