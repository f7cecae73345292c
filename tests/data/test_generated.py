"""Index sharding of generated data: every sample exactly once, in order, for any world size."""

from __future__ import annotations

import pytest
import torch

from bigroc.data import GeneratedDataModule, index_batches, shard_range


@pytest.mark.parametrize("n", [1, 7, 64, 1000])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_each_index_once_in_rank_order(n, world):
    blocks = [shard_range(n, r, world) for r in range(world)]
    got = torch.cat([torch.cat(index_batches(a, b, 5)) if b > a else torch.empty(0, dtype=torch.long)
                     for a, b in blocks])
    assert got.tolist() == list(range(n))
    sizes = [b - a for a, b in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_index_batches_sizes():
    batches = index_batches(10, 25, 6)
    assert [b.tolist() for b in batches] == [list(range(10, 16)), list(range(16, 22)), [22, 23, 24]]
    assert all(b.dtype == torch.long for b in batches)


def test_datamodule_yields_index_batches():
    loader = GeneratedDataModule(num_samples=10, batch_size=4).test_dataloader()
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("kwargs", [{"num_samples": 0}, {"num_samples": 5, "batch_size": 0}])
def test_datamodule_rejects_empty_settings(kwargs):
    with pytest.raises(ValueError, match="must be >= 1"):
        GeneratedDataModule(**kwargs)


def test_shard_range_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        shard_range(10, 2, 2)
