"""Random affine warps, erased patches and pixel noise applied to whole batches on the run's device.

One `affine_grid` + `grid_sample` call warps the batch: no per-image loop, no PIL, no CPU round trip,
so augmentation costs about one extra small convolution on a GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchAugment:
    """Rotation (degrees), scale (relative), translation (fraction of the image side), an erased square (its side
    as a fraction of the image side), Gaussian noise (std)."""

    def __init__(self, rotation: float = 0.0, scale: float = 0.0, translate: float = 0.0, noise: float = 0.0,
                 erase: float = 0.0, erase_aspect: float = 1.0):
        self.rotation, self.scale, self.translate, self.noise = rotation, scale, translate, noise
        self.erase, self.erase_aspect = erase, erase_aspect

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.rotation, self.scale, self.translate, self.noise, self.erase))

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
        if self.erase > 0:
            out = out.masked_fill(self._erased(out), 0.0)
        if self.noise > 0:
            out = (out + torch.randn_like(out) * self.noise).clamp_(0.0, 1.0)
        return out

    def _erased(self, images: torch.Tensor) -> torch.Tensor:
        """A mask, True on one rectangle per image at a uniformly random place inside it: the area of a square of side
        `erase` x the image side, `erase_aspect` times as wide as high (1: the square; 7: a thin horizontal band).

        Why: a view that loses part of a stroke asks the clustering terms to group an image with its variants
        that lack that part - a seven with a bar across its stem with the sevens without one, a closed four
        with the open ones - where rotations and shifts leave the extra stroke in every view.
        """
        n, _, height, width = images.shape
        side = self.erase * height
        tall = min(height, max(1, round(side / math.sqrt(self.erase_aspect))))
        wide = min(width, max(1, round(side * math.sqrt(self.erase_aspect))))
        top = torch.randint(0, height - tall + 1, (n, 1, 1, 1), device=images.device)
        left = torch.randint(0, width - wide + 1, (n, 1, 1, 1), device=images.device)
        rows = torch.arange(height, device=images.device).view(1, 1, height, 1)
        cols = torch.arange(width, device=images.device).view(1, 1, 1, width)
        return (rows >= top) & (rows < top + tall) & (cols >= left) & (cols < left + wide)
