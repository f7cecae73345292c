"""reference_stats: streamed moments, computed once, cached atomically, stale caches refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigroc.data import read_cifar10
from bigroc.metrics import ReferenceStats, reference_stats

D = 12


class CountingExtractor(nn.Module):
    """A cheap stand-in for Inception: a fixed projection of the pixels; counts its images."""

    num_features = D

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.projection = torch.randn(3 * 32 * 32, D, generator=torch.Generator().manual_seed(0)) / 100
        self.images = 0
        self.fail_after = fail_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_after is not None and self.images >= self.fail_after:
            raise RuntimeError("extractor failed half-way")
        self.images += x.shape[0]
        return (x.flatten(1).double() @ self.projection.double()).float()  # batch-independent rounding


def stats(cifar_root, cache_dir, extractor, **overrides) -> ReferenceStats:
    settings = {"split": "test", "num_samples": 20, "max_features": 8, "batch_size": 6, "progress": False}
    return reference_stats(cifar_root, cache_dir=cache_dir, extractor=extractor, **{**settings, **overrides})


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_streamed_statistics_match_a_direct_computation(cifar_root, tmp_path):
    extractor = CountingExtractor()
    result = stats(cifar_root, tmp_path, extractor)
    f = CountingExtractor()(read_cifar10(cifar_root, "test")[0][:20]).double()
    assert result.num_samples == 20 and extractor.images == 20
    assert torch.allclose(result.mu, f.mean(0)) and result.mu.dtype == torch.float64
    assert np.allclose(result.sigma.numpy(), np.cov(f.numpy(), rowvar=False))
    assert result.sigma.dtype == torch.float64
    assert result.features.shape == (8, D) and result.features.dtype == torch.float32
    assert torch.allclose(result.features, f[:8].float())
    assert result.key["precision"] == "32" and result.key["num_samples"] == 20
    assert result.key["network"].startswith("TF Inception-v3, default_1.pt sha256 ")
    assert result.mu_s is None  # a pool3-only extractor gives no spatial statistics


def test_cached_once_then_loaded(cifar_root, tmp_path):
    first = stats(cifar_root, tmp_path, CountingExtractor())
    (name,) = cache_files(tmp_path)  # the final file only: no temporary file left beside it
    assert name.endswith(".pt") and not name.startswith(".")
    second_extractor = CountingExtractor()
    second = stats(cifar_root, tmp_path, second_extractor)
    assert second_extractor.images == 0  # read from the cache, not recomputed
    assert torch.equal(second.mu, first.mu) and torch.equal(second.sigma, first.sigma)
    assert torch.equal(second.features, first.features) and second.key == first.key


def test_different_keys_give_different_files(cifar_root, tmp_path):
    stats(cifar_root, tmp_path, CountingExtractor())
    stats(cifar_root, tmp_path, CountingExtractor(), num_samples=24)
    stats(cifar_root, tmp_path, CountingExtractor(), max_features=4)
    stats(cifar_root, tmp_path, CountingExtractor(), precision="bf16")  # only the key; no network built
    names = cache_files(tmp_path)
    assert len(names) == 4 and all(name.startswith("cifar10-test-") for name in names)


def test_corrupt_or_foreign_cache_is_refused_clearly(cifar_root, tmp_path):
    stats(cifar_root, tmp_path, CountingExtractor())
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    path.write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match=rf"{path.name}.*delete"):
        stats(cifar_root, tmp_path, CountingExtractor())
    path.write_bytes(good)
    foreign = torch.load(path, weights_only=True)
    foreign["key"] = {**foreign["key"], "split": "train"}
    torch.save(foreign, path)
    with pytest.raises(RuntimeError, match=rf"{path.name} holds .*delete"):
        stats(cifar_root, tmp_path, CountingExtractor())


def test_failure_half_way_leaves_no_file(cifar_root, tmp_path):
    with pytest.raises(RuntimeError, match="half-way"):
        stats(cifar_root, tmp_path, CountingExtractor(fail_after=12))
    assert cache_files(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):  # the data reader's own message
        stats(tmp_path / "no-data", tmp_path, CountingExtractor())
    assert cache_files(tmp_path) == []


def test_default_cache_dir_from_environment(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BIGROC_CACHE", str(tmp_path / "env-cache"))
    stats(cifar_root, None, CountingExtractor(), progress=True)
    assert len(cache_files(tmp_path / "env-cache")) == 1


def test_bad_arguments(cifar_root, tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        stats(cifar_root, tmp_path, CountingExtractor(), dataset="imagenet")
    with pytest.raises(ValueError, match="num_samples"):
        stats(cifar_root, tmp_path, CountingExtractor(), num_samples=10**6)
    with pytest.raises(ValueError, match="split"):
        stats(cifar_root, tmp_path, CountingExtractor(), split="validation")
