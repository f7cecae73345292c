"""Shared checks for image sources: the properties every generator must have.

A helper module rather than a conftest.py, so that it never shadows another folder's
``conftest`` module; test modules import what they use.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from bigroc.generators import ImageSource

TOL = 1e-5  # conv numerics may differ slightly with the batch size


def warm_norms(model: torch.nn.Module, seed: int = 5) -> torch.nn.Module:
    """Give every batch-norm buffer and affine parameter non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_buffers()) + list(model.named_parameters()):
            if name.endswith(("running_mean", "stored_mean")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith(("running_var", "stored_var")):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model


def check_properties(source: ImageSource, conditional: bool, size: int = 32) -> None:
    """Shapes, range, determinism per (seed, index), batch independence, balanced labels."""
    idx = torch.tensor([0, 1, 2, 3, 4, 13])
    x, y = source.generate(idx, seed=0)
    assert x.shape == (len(idx), 3, size, size) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert x.std() > 0  # not a constant image
    x2, y2 = source.generate(idx, seed=0)
    assert torch.equal(x, x2)
    x3, _ = source.generate(idx, seed=1)
    assert not torch.allclose(x, x3)
    single, _ = source.generate(torch.tensor([3]), seed=0)
    torch.testing.assert_close(single[0], x[3], atol=TOL, rtol=0)
    reordered, y_re = source.generate(torch.tensor([13, 2, 0]), seed=0)
    torch.testing.assert_close(reordered, x[[5, 2, 0]], atol=TOL, rtol=0)
    assert source.conditional is conditional
    if conditional:
        assert y.dtype == torch.int64 and torch.equal(y, idx % source.num_classes)
        assert torch.equal(y, y2) and torch.equal(y_re, torch.tensor([3, 2, 0]))
    else:
        assert y is None
    assert not source.training  # generate() leaves the mode as it was (eval after build)




@contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread: faster for these tiny models, much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def z_and_y() -> tuple[torch.Tensor, torch.Tensor]:
    """Four fixed latents of size 128 and labels."""
    g = torch.Generator().manual_seed(11)
    return torch.randn(4, 128, generator=g), torch.tensor([0, 3, 7, 9])
