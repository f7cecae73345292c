"""What every image source gives the rest of the program.

An :class:`ImageSource` hands out images by global index: ``generate(indices, seed)``
returns float images in [0, 1], NCHW, and (for conditional sources) their labels. Image
``i`` depends on ``(seed, i)`` only, never on the batch it is asked in, the order, or the
process, which is what makes sharded and resumed runs equal to a single run.

A :class:`Generator` is a latent-variable model: ``forward(z, y)`` gives images in the
model's native ``output_range``; :meth:`Generator.generate` draws ``z`` per index, maps
the output to [0, 1] once, and clamps.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

MAX_INDEX = 2**32  # latents are keyed by (seed << 32) | index
MAX_SEED = 2**32


class ImageSource(nn.Module):
    """Images by global index, float NCHW in [0, 1] on the module's device.

    Attributes:
        num_classes: classes of the dataset the source imitates (10 for CIFAR-10).
        conditional: True when :meth:`generate` returns labels.
        image_size: height (and width) of the images, 32 for CIFAR-10.
        image_shape: (height, width); square (``image_size`` twice) unless a source of
            stored images says otherwise.
    """

    num_classes: int = 10
    conditional: bool = False
    image_size: int = 32

    def __init__(self) -> None:
        super().__init__()
        # An empty, unsaved buffer: it follows .to(device), so every source knows its
        # device even without parameters.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.image_size, self.image_size

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def __len__(self) -> int:
        raise NotImplementedError

    def __bool__(self) -> bool:  # a module is truthy, whatever __len__ says
        return True

    def generate(self, indices: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``indices`` under ``seed``.

        Shape:
            indices: (B,) int64 global sample indices.
            returns: x (B, 3, H, W) float in [0, 1] on ``self.device``; y (B,) int64 or None.
        """
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``n`` images: ``generate(torch.arange(n), seed)``."""
        return self.generate(torch.arange(int(n)), seed)


def as_indices(indices: torch.Tensor | list[int]) -> torch.Tensor:
    """``indices`` as a 1-D int64 CPU tensor."""
    idx = torch.as_tensor(indices).detach().to("cpu")
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dim() != 1:
        raise ValueError(f"indices must be a 1-D integer tensor, got {idx.dtype} of shape {tuple(idx.shape)}")
    return idx.long()


def seeded_normal(indices: torch.Tensor, seed: int, dim: int) -> torch.Tensor:
    """Per-index N(0, 1) vectors: row ``i`` comes from its own stream keyed ``(seed << 32) | i``.

    The stream is NumPy's Philox (counter-based; its raw 64-bit output is stable across
    versions) turned into normals by Box-Muller here, so a row depends on ``(seed, index)``
    only. (``torch.Generator().manual_seed`` on the CPU keeps only the low 32 bits of a
    seed, so it would ignore ``seed`` in that key.)

    Shape:
        indices: (B,) int, each in [0, 2**32); returns (B, dim) float32 on the CPU.
    """
    idx = as_indices(indices)
    seed = int(seed)
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must lie in [0, 2**32), got {seed}")
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= MAX_INDEX):
        raise ValueError(f"sample indices must lie in [0, 2**32), got [{int(idx.min())}, {int(idx.max())}]")
    pairs = (dim + 1) // 2
    raw = np.empty((len(idx), 2 * pairs), dtype=np.uint64)
    for row, i in enumerate(idx.tolist()):
        raw[row] = np.random.Philox(key=(seed << 32) | i).random_raw(2 * pairs)
    u = (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53  # uniform on [0, 1), 53 bits
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 0::2]))  # 1 - u lies in (0, 1]
    angle = 2.0 * np.pi * u[:, 1::2]
    z = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :dim]
    return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))


class Generator(ImageSource):
    """A latent-variable generator: ``z ~ N(0, I)`` (and a label) -> an image.

    Subclasses set ``latent_dim``, ``output_range`` (the range ``forward`` produces, e.g.
    ``(-1, 1)`` for a tanh output), ``num_classes``, ``conditional`` and implement
    :meth:`forward`.
    """

    latent_dim: int = 128
    output_range: tuple[float, float] = (-1.0, 1.0)

    def __len__(self) -> int:
        return sys.maxsize

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Shape: z (B, latent_dim), y (B,) int64 or None -> (B, 3, H, W) in ``output_range``."""
        raise NotImplementedError

    def latents(self, indices: torch.Tensor, seed: int) -> torch.Tensor:
        """(B, latent_dim) float32 on the CPU, a function of ``(seed, index)`` per row."""
        return seeded_normal(indices, seed, self.latent_dim)

    def labels(self, indices: torch.Tensor) -> torch.Tensor | None:
        """``indices % num_classes`` (class-balanced) for conditional generators, else None."""
        if not self.conditional:
            return None
        return as_indices(indices) % self.num_classes

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Native ``output_range`` -> [0, 1], clamped."""
        lo, hi = self.output_range
        return ((x.float() - lo) / (hi - lo)).clamp_(0.0, 1.0)

    @torch.no_grad()
    def generate(self, indices: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """See :meth:`ImageSource.generate`; runs in eval mode and restores the mode after."""
        idx = as_indices(indices)
        z = self.latents(idx, seed).to(self.device)
        y = self.labels(idx)
        y = None if y is None else y.to(self.device)
        was_training = self.training
        self.eval()
        try:
            x = self(z, y)
        finally:
            self.train(was_training)
        return self.to_unit(x), y
