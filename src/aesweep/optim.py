"""Optimizer from its config (`_partial_: true`, so Hydra leaves the parameters to us) and the lr schedule."""

from __future__ import annotations

import math

import torch
from hydra.utils import instantiate


def build_optimizer(optimizer_cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    return instantiate(optimizer_cfg)(model.parameters())


def build_schedule(scheduler_cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int):
    """Per-step multiplier on the lr: linear warm-up, then constant ("none") or cosine decay to min_lr_ratio."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(scheduler_cfg.warmup_epochs * steps_per_epoch))
    floor = scheduler_cfg.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if scheduler_cfg.name == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
