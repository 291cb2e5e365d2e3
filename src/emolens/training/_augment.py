"""Batched data augmentation on torch tensors.

Working on whole batches avoids per-image Python loops and data-loader workers, which matters on
a 2-core CPU. All randomness comes from an explicit generator so a resumed run repeats exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment", "cutmix", "mixup", "random_erase"]


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


def mixup(
    images: torch.Tensor, targets: torch.Tensor, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image and its target distribution with another of the batch (Zhang et al., 2018).

    One weight ``lam ~ Beta(alpha, alpha)`` for the batch: ``lam * x + (1 - lam) * x[perm]``, and the same for
    the targets.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(images), generator=gen).to(images.device)
    return lam * images + (1 - lam) * images[perm], lam * targets + (1 - lam) * targets[perm]


def cutmix(
    images: torch.Tensor, targets: torch.Tensor, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste a box of another image of the batch into each image (Yun et al., 2019).

    The box covers about ``1 - lam`` of the image (``lam ~ Beta(alpha, alpha)``, one box for the batch, clipped
    at the border); the targets are mixed by the area each image keeps, so a face that lost its mouth to
    another's learns the blend of both distributions in that proportion.
    """
    n, _, height, width = images.shape
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = round(height * cut), round(width * cut)
    centre_y = int(torch.randint(height, (1,), generator=gen))
    centre_x = int(torch.randint(width, (1,), generator=gen))
    top, bottom = max(centre_y - box_h // 2, 0), min(centre_y + (box_h + 1) // 2, height)
    left, right = max(centre_x - box_w // 2, 0), min(centre_x + (box_w + 1) // 2, width)
    perm = torch.randperm(n, generator=gen).to(images.device)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[perm, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, kept * targets + (1 - kept) * targets[perm]
