"""A finished run on disk: merged (and sharded) samples, seed averages, metrics.json."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigroc.storage import ChunkStore
from bigroc.report import mean_over_seeds, merge_samples, read_metrics, write_metrics


def filled_store(tmp_path, n=10, batch=4):
    store = ChunkStore(tmp_path / "chunks")
    for start in range(0, n, batch):
        idx = torch.arange(start, min(start + batch, n))
        base = idx.view(-1, 1, 1, 1).expand(-1, 3, 2, 2).to(torch.uint8)
        store.save(idx, base, base + 100, idx % 10)
    return store


def test_merge_writes_adm_files_in_index_order(tmp_path):
    paths = merge_samples(filled_store(tmp_path), tmp_path, 10)
    assert [p.name for p in paths] == ["samples_base.npz", "samples_boosted.npz"]
    with np.load(tmp_path / "samples_boosted.npz") as f:
        assert f["arr_0"].shape == (10, 2, 2, 3)
        assert f["arr_0"][:, 0, 0, 0].tolist() == [100 + i for i in range(10)]
        assert f["arr_1"].tolist() == list(range(10))


def test_merge_shards_large_runs(tmp_path):
    paths = merge_samples(filled_store(tmp_path), tmp_path, 10, shard_size=4)
    assert [p.name for p in paths[:3]] == ["samples_base_000.npz", "samples_base_001.npz", "samples_base_002.npz"]
    got = np.concatenate([np.load(p)["arr_0"][:, 0, 0, 0] for p in paths[:3]])
    assert got.tolist() == list(range(10))


def test_mean_over_seeds_adds_std_and_keeps_the_rest():
    out = mean_over_seeds([{"base/fid": 10.0, "eps": 1.0, "h": [1, 2]}, {"base/fid": 14.0, "eps": 1.0, "h": [3]}])
    assert out["base/fid"] == 12.0 and out["base/fid_std"] == pytest.approx(2 ** 0.5 * 2)
    assert out["h"] == [1, 2] and out["eps"] == 1.0
    assert "base/fid_std" not in mean_over_seeds([{"base/fid": 10.0}])


def test_metrics_round_trip(tmp_path):
    assert read_metrics(tmp_path) is None
    write_metrics(tmp_path, {"boosted/fid": 1.5})
    assert read_metrics(tmp_path) == {"boosted/fid": 1.5}
