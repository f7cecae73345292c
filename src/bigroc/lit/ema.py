"""Exponential moving averages of a generator's weights (what the exported generator holds)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``p_ema <- decay * p_ema + (1 - decay) * p`` for every parameter; buffers (batch-norm
    statistics, spectral-norm vectors) are copied, as in StyleGAN2-ADA and BigGAN-PyTorch."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def ema_decay_at(updates: int, decay: float, warmup: bool) -> float:
    """Decay of the ``updates``-th EMA update (0-based): ``min(decay, (1 + n) / (10 + n))``
    with ``warmup`` (TensorFlow's ``num_updates`` rule, so short runs forget the random
    initialisation), else ``decay``."""
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay
