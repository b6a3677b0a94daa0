"""Random affine warps and pixel noise applied to whole batches on the run's device.

One `affine_grid` + `grid_sample` call warps the batch: no per-image loop, no PIL, no CPU round trip,
so augmentation costs about one extra small convolution on a GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchAugment:
    """Rotation (degrees), scale (relative), translation (fraction of the image side), Gaussian noise (std)."""

    def __init__(self, rotation: float = 0.0, scale: float = 0.0, translate: float = 0.0, noise: float = 0.0):
        self.rotation, self.scale, self.translate, self.noise = rotation, scale, translate, noise

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.rotation, self.scale, self.translate, self.noise))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """images: float [B, 1, H, W] in [0, 1] -> a warped, noised copy, still in [0, 1]."""
        n = images.shape[0]

        def uniform(half_width: float) -> torch.Tensor:
            return (torch.rand(n, device=images.device) * 2 - 1) * half_width

        out = images
        if self.rotation > 0 or self.scale > 0 or self.translate > 0:
            angle = uniform(math.radians(self.rotation))
            zoom = 1 + uniform(self.scale)
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            # grid coordinates run over [-1, 1], so a shift of a fraction t of the side is 2t
            theta = torch.stack(
                [torch.stack([cos, -sin, uniform(2 * self.translate)], 1),
                 torch.stack([sin, cos, uniform(2 * self.translate)], 1)],
                1,
            ).to(images.dtype)
            grid = F.affine_grid(theta, list(images.shape), align_corners=False)
            out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.noise > 0:
            out = (out + torch.randn_like(out) * self.noise).clamp_(0.0, 1.0)
        return out
