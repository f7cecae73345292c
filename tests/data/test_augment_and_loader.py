"""Batch augmentation and the resumable, shardable training loader."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from bigroc.data import ResumableLoader, random_crop_flip
from bigroc.data import loader as loader_module


def test_crop_flip_moves_pixels_without_changing_them():
    x = torch.rand(16, 3, 32, 32)
    out = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    assert all(torch.equal(o, xi) or f for o, xi, f in zip(out, x, flipped)) and 0 < sum(flipped) < 16
    padded = random_crop_flip(x, padding=4, generator=torch.Generator().manual_seed(0))
    assert padded.shape == x.shape and padded.dtype == x.dtype
    assert torch.equal(padded, random_crop_flip(x, padding=4, generator=torch.Generator().manual_seed(0)))
    # A shifted crop shows the zero padding somewhere.
    assert (padded == 0).any() and not (x == 0).any()


def index_loader(n=50, batch=8, seed=0):
    return ResumableLoader(TensorDataset(torch.arange(n)), batch_size=batch, seed=seed)


def batches(loader, k=None):
    out = []
    for (b,) in loader:
        out.append(b.tolist())
        if k is not None and len(out) == k:
            break
    return out


def test_epochs_are_seeded_permutations():
    loader = index_loader()
    first, second = batches(loader), batches(loader)
    assert len(first) == len(loader) == 6 and first != second
    assert len({i for b in first for i in b}) == 48
    assert batches(index_loader()) == first and batches(index_loader(seed=1)) != first


@pytest.mark.parametrize("consumed", [0, 2, 6])
def test_resuming_mid_epoch_yields_the_remaining_batches(consumed):
    reference = index_loader()
    uninterrupted = batches(reference) + batches(reference)
    loader = index_loader()
    seen = batches(loader, k=consumed) if consumed else []
    resumed = index_loader()
    resumed.load_state_dict(loader.state_dict())
    rest = batches(resumed)
    if consumed == 6:  # saved at the end of the epoch: the next one starts
        assert seen + rest == uninterrupted
    else:
        assert seen + rest == uninterrupted[:6]


def test_wrong_seed_on_resume_is_refused():
    loader = index_loader()
    batches(loader, k=1)
    with pytest.raises(ValueError, match="same seed"):
        index_loader(seed=3).load_state_dict(loader.state_dict())


def test_ranks_share_an_epoch_without_overlap(monkeypatch):
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(loader_module, "_rank_and_world", lambda r=rank: (r, 2))
        seen.append([i for b in batches(index_loader(n=64)) for i in b])
    assert len(seen[0]) == len(seen[1]) == 32 and not set(seen[0]) & set(seen[1])
