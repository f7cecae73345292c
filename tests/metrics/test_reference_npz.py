"""Reference batches users bring (ADM's ImageNet ``VIRTUAL_*.npz`` layout): statistics,
images or both; cached by the file's SHA-1; every malformed file refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bigroc.metrics import GenerativeScores, npz_reference_stats
from bigroc.metrics.features import SPATIAL
from bigroc.metrics.reference_npz import read_reference_npz

D = 6


class PixelMeans(nn.Module):
    """A cheap stand-in for Inception: per-channel means and extremes of any image size."""

    num_features = D

    def __init__(self) -> None:
        super().__init__()
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        self.images += x.shape[0]
        f = x.double() / 255
        return torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1).float()


def images(n: int = 10, size: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def statistics(seed: int = 1) -> dict[str, np.ndarray]:
    a = np.random.default_rng(seed).normal(size=(D, D))
    return {"mu": a[0], "sigma": a @ a.T + np.eye(D)}


def stats(path, tmp_path, **kw):
    settings = {"cache_dir": tmp_path / "cache", "extractor": PixelMeans(), "num_features": D, "progress": False,
                "batch_size": 4, "max_features": 100}
    return npz_reference_stats(path, **{**settings, **kw})


def test_statistics_only_give_fid_and_no_features(tmp_path):
    np.savez(tmp_path / "ref.npz", **statistics())
    extractor = PixelMeans()
    ref = stats(tmp_path / "ref.npz", tmp_path, extractor=extractor)
    assert extractor.images == 0 and ref.num_samples is None and ref.features.shape == (0, D)
    assert torch.equal(ref.mu, torch.from_numpy(statistics()["mu"])) and ref.sigma.dtype == torch.float64
    assert not (tmp_path / "cache").exists()  # nothing computed, nothing cached
    scores = GenerativeScores(ref, kid_subset_size=4)
    scores.update(torch.randn(8, D), torch.arange(8))
    assert set(scores.compute()) == {"fid", "fid_inf"}  # both need the reference's statistics alone


def test_images_only_give_every_statistic_like_a_direct_computation(tmp_path):
    x = images(10)
    np.savez(tmp_path / "ref.npz", arr_0=x)
    ref = stats(tmp_path / "ref.npz", tmp_path)
    f = PixelMeans()(torch.from_numpy(x).permute(0, 3, 1, 2)).double()
    assert ref.num_samples == 10 and torch.allclose(ref.mu, f.mean(0))
    assert np.allclose(ref.sigma.numpy(), np.cov(f.numpy(), rowvar=False))
    assert torch.allclose(ref.features, f.float()) and ref.key["dataset"] == "npz"


def test_statistics_and_images_like_adm_use_the_file_statistics_and_first_images(tmp_path):
    np.savez(tmp_path / "VIRTUAL_tiny.npz", arr_0=images(10), **statistics())
    extractor = PixelMeans()
    ref = stats(tmp_path / "VIRTUAL_tiny.npz", tmp_path, extractor=extractor, max_features=6)
    assert extractor.images == 6  # only the KID/PR images: FID takes the file's mu, sigma
    assert torch.equal(ref.mu, torch.from_numpy(statistics()["mu"])) and ref.num_samples is None
    assert ref.features.shape == (6, D)
    scores = GenerativeScores(ref, kid_subset_size=4)
    scores.update(torch.rand(8, D), torch.arange(8))
    assert {"fid", "kid_mean", "precision", "recall"} <= set(scores.compute())


def test_features_are_cached_under_the_files_digest(tmp_path):
    path = tmp_path / "ref.npz"
    np.savez(path, arr_0=images(8))
    first = stats(path, tmp_path)
    (cached,) = (tmp_path / "cache").iterdir()
    assert cached.name.startswith("npz-ref-8-")
    again = PixelMeans()
    assert torch.equal(stats(path, tmp_path, extractor=again).sigma, first.sigma) and again.images == 0
    np.savez(path, arr_0=images(8, seed=5))  # same name and size, other images: a new entry
    assert not torch.equal(stats(path, tmp_path).mu, first.mu)
    assert len(list((tmp_path / "cache").iterdir())) == 2


BAD = {
    "no_keys": ({"labels": np.arange(3)}, r"holds neither mu/sigma nor arr_0 \(keys: labels\)"),
    "mu_alone": ({"mu": np.zeros(D)}, "has mu but no sigma"),
    "sigma_alone": ({"sigma": np.eye(D), "arr_0": images(4)}, "has sigma but no mu"),
    "mu_dims": ({"mu": np.zeros(D + 1), "sigma": np.eye(D)}, rf"mu is float64 \({D + 1},\), expected float \({D},\)"),
    "sigma_dims": ({"mu": np.zeros(D), "sigma": np.eye(D)[:3]}, rf"sigma is float64 \(3, {D}\), expected float"),
    "int_mu": ({"mu": np.zeros(D, int), "sigma": np.eye(D)}, "mu is int64"),
    "nan": ({"mu": np.full(D, np.nan), "sigma": np.eye(D)}, "NaN or infinite"),
    "float_images": ({"arr_0": images(4).astype(np.float32)}, r"arr_0 is float32 \(4, 24, 24, 3\), expected uint8"),
    "nchw_images": ({"arr_0": images(4).transpose(0, 3, 1, 2).copy()}, r"arr_0 is uint8 \(4, 3, 24, 24\)"),
    "one_image": ({"arr_0": images(1)}, "N >= 2"),
    "mu_s_alone": ({"mu": np.zeros(D), "sigma": np.eye(D), "mu_s": np.zeros(SPATIAL)}, "has mu_s but no sigma_s"),
    "mu_s_dims": ({"mu": np.zeros(D), "sigma": np.eye(D), "mu_s": np.zeros(3), "sigma_s": np.eye(3)},
                  rf"mu_s is float64 \(3,\), expected float \({SPATIAL},\)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_reference_files_are_named_in_one_line(case, tmp_path):
    arrays, message = BAD[case]
    path = tmp_path / f"{case}.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as err:
        read_reference_npz(path, num_features=D)
    assert str(path) in str(err.value) and "\n" not in str(err.value) and "metrics.path" in str(err.value)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="nowhere.npz does not exist; set metrics.path"):
        read_reference_npz(tmp_path / "nowhere.npz")
    (tmp_path / "notes.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="notes.npz: not a readable .npz file"):
        read_reference_npz(tmp_path / "notes.npz")


def test_adm_spatial_statistics_give_sfid_as_they_are(tmp_path):
    rng = np.random.default_rng(3)
    spatial = rng.normal(size=(64, SPATIAL))
    mu_s, sigma_s = spatial.mean(0), np.cov(spatial, rowvar=False)
    np.savez(tmp_path / "adm.npz", **statistics(), mu_s=mu_s, sigma_s=sigma_s)
    ref = stats(tmp_path / "adm.npz", tmp_path)
    assert torch.equal(ref.mu_s, torch.from_numpy(mu_s)) and torch.equal(ref.sigma_s, torch.from_numpy(sigma_s))

    def sfid(rows: np.ndarray) -> float:
        scores = GenerativeScores(ref, kid_subset_size=4)
        with pytest.raises(ValueError, match="spatial"):
            scores.update(torch.randn(64, D), torch.arange(64))  # the reference has them: they are needed
        scores.update(torch.randn(64, D), torch.arange(64), spatial=torch.from_numpy(rows).float())
        return scores.compute()["sfid"]

    assert abs(sfid(spatial)) < 1e-2  # the set the statistics came from
    assert sfid(spatial + 0.5) > 0.5 * SPATIAL * 0.25  # shifted by 0.5 in every dimension: ||d mu||^2 = 506
