"""Discriminators of the GANs ``train_generator.py`` trains (torch-mimicry's 32x32 layout).

``SNResNetDiscriminator32`` is mimicry's ``SNGANDiscriminator32`` / ``CGANPDDiscriminator32``:
a residual down-sampling stack with spectral norm on every layer, ReLU, global sum pooling
and a linear head, plus (conditional) the projection term ``<embed(y), h>`` of Miyato &
Koyama (2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(c_in: int, c_out: int, kernel: int, gain: float) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, kernel, 1, padding=kernel // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    return spectral_norm(conv)


class DBlock(nn.Module):
    """mimicry's ``DBlock`` (``optimized``: ``DBlockOptimized``, the first block, which
    convolves before its ReLU)."""

    def __init__(self, c_in: int, c_out: int, *, downsample: bool, optimized: bool = False) -> None:
        super().__init__()
        self.downsample, self.optimized = downsample, optimized
        self.c1 = _sn_conv(c_in, c_out, 3, 2**0.5)
        self.c2 = _sn_conv(c_out, c_out, 3, 2**0.5)
        self.learnable_sc = optimized or c_in != c_out or downsample
        if self.learnable_sc:
            self.c_sc = _sn_conv(c_in, c_out, 1, 1.0)

    def _down(self, h: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(h, 2) if self.downsample else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.optimized else F.relu(x)
        h = self._down(self.c2(F.relu(self.c1(h))))
        if not self.learnable_sc:
            return h + x
        sc = self.c_sc(F.avg_pool2d(x, 2)) if self.optimized else self._down(self.c_sc(x))
        return h + sc


class SNResNetDiscriminator32(nn.Module):
    """Spectral-norm ResNet discriminator for 32x32 images in the generator's range.

    Args:
        ndf: feature maps throughout (mimicry: 128).
        num_classes: > 0 adds the projection term (cGAN-PD); 0 is unconditional (SNGAN).

    Shape: x (B, 3, 32, 32), y (B,) int64 when conditional -> (B,) scores.
    """

    def __init__(self, ndf: int = 128, num_classes: int = 0) -> None:
        super().__init__()
        self.ndf, self.num_classes = int(ndf), int(num_classes)
        self.block1 = DBlock(3, self.ndf, downsample=True, optimized=True)
        self.block2 = DBlock(self.ndf, self.ndf, downsample=True)
        self.block3 = DBlock(self.ndf, self.ndf, downsample=False)
        self.block4 = DBlock(self.ndf, self.ndf, downsample=False)
        self.l5 = nn.Linear(self.ndf, 1)
        nn.init.xavier_uniform_(self.l5.weight, 1.0)
        self.l5 = spectral_norm(self.l5)
        if self.num_classes > 0:
            self.l_y = nn.Embedding(self.num_classes, self.ndf)
            nn.init.xavier_uniform_(self.l_y.weight, 1.0)
            self.l_y = spectral_norm(self.l_y)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.block4(self.block3(self.block2(self.block1(x))))
        h = F.relu(h).sum(dim=(2, 3))
        out = self.l5(h).squeeze(1)
        if self.num_classes > 0:
            if y is None:
                raise ValueError("this discriminator is class-conditional: forward(x, y) needs labels y")
            out = out + (self.l_y(y) * h).sum(1)
        return out
