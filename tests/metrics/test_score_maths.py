"""The pure score functions against torchmetrics, SciPy, brute force and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from bigroc.metrics import frechet_distance, kid, precision_recall
from bigroc.metrics.maths import inception_score, moments_from_sums


class PassThrough(nn.Module):
    """Feature "network" for torchmetrics that hands features through unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """n samples of one correlated Gaussian in d dimensions (same covariance for every seed)."""
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(1000 + d)) / math.sqrt(d)
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g) @ mix * scale + shift).double()


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return moments_from_sums(x.sum(0), x.T @ x, x.shape[0])


def test_moments_match_numpy():
    x = gaussian(40, 6, seed=0)
    mu, sigma = moments(x)
    assert torch.allclose(mu, x.mean(0))
    assert np.allclose(sigma.numpy(), np.cov(x.numpy(), rowvar=False))


def test_frechet_matches_scipy_sqrtm():
    a, b = gaussian(300, 32, seed=1), gaussian(300, 32, seed=2, shift=0.3, scale=1.2)
    (m1, s1), (m2, s2) = moments(a), moments(b)
    root = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = ((m1 - m2) ** 2).sum().item() + np.trace(s1.numpy() + s2.numpy() - 2 * root)
    assert frechet_distance(m1, s1, m2, s2).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [300, 40])  # full-rank and singular (n < d) covariances
def test_frechet_matches_torchmetrics_fid(n):
    a, b = gaussian(n, 64, seed=3), gaussian(n, 64, seed=4, shift=0.5)
    fid = FrechetInceptionDistance(feature=PassThrough(64))
    fid.update(a, real=True)
    fid.update(b, real=False)
    ours = frechet_distance(*moments(a), *moments(b))
    assert ours.item() == pytest.approx(fid.compute().item(), rel=1e-7)


def test_frechet_of_a_set_with_itself_is_zero_and_symmetric():
    a, b = gaussian(30, 128, seed=5), gaussian(30, 128, seed=6, shift=1.0)  # singular covariances
    assert abs(frechet_distance(*moments(a), *moments(a)).item()) < 1e-9
    ab, ba = frechet_distance(*moments(a), *moments(b)), frechet_distance(*moments(b), *moments(a))
    assert ab.item() == pytest.approx(ba.item(), rel=1e-10)


def test_kid_matches_torchmetrics_with_one_full_subset():
    real, fake = gaussian(60, 16, seed=7).float(), gaussian(60, 16, seed=8, shift=0.4).float()
    with pytest.warns(UserWarning, match="save all extracted features"):
        metric = KernelInceptionDistance(feature=PassThrough(16), subsets=1, subset_size=60)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected_mean, expected_std = metric.compute()
    mean, std = kid(real, fake, subsets=1, subset_size=60)
    assert mean.item() == pytest.approx(expected_mean.item(), rel=1e-5)
    assert std.item() == 0.0 == expected_std.item()


def test_kid_is_seeded_and_clips_the_subset_size():
    real, fake = gaussian(50, 8, seed=9), gaussian(40, 8, seed=10, shift=0.2)
    assert torch.equal(torch.stack(kid(real, fake, subsets=5, seed=3)), torch.stack(kid(real, fake, subsets=5, seed=3)))
    assert not torch.equal(kid(real, fake, subsets=5, seed=3)[0], kid(real, fake, subsets=5, seed=4)[0])
    # subset_size 1000 is clipped to 40; drawing all 40 fake rows makes every draw's fake half equal
    clipped = kid(real, fake, subsets=4, subset_size=1000, seed=1)
    explicit = kid(real, fake, subsets=4, subset_size=40, seed=1)
    assert torch.equal(clipped[0], explicit[0])


def test_kid_near_zero_for_same_distribution_and_large_for_shift():
    real, same, far = gaussian(200, 8, seed=11), gaussian(200, 8, seed=12), gaussian(200, 8, seed=13, shift=2.0)
    assert abs(kid(real, same, subsets=10, subset_size=100)[0].item()) < 0.05
    assert kid(real, far, subsets=10, subset_size=100)[0].item() > 1.0


def brute_precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    """Full distance matrices and sorting: the definition, with no blocking."""

    def radii(x):
        return torch.cdist(x, x).sort(dim=1).values[:, k]  # column 0 is the point itself

    d = torch.cdist(fake, real)
    precision = (d <= radii(real)[None, :]).any(1).double().mean().item()
    recall = (d.T <= radii(fake)[None, :]).any(1).double().mean().item()
    return precision, recall


def test_precision_recall_matches_brute_force_for_any_block_size():
    real, fake = gaussian(70, 5, seed=14), gaussian(50, 5, seed=15, shift=0.7, scale=0.8)
    expected = brute_precision_recall(real, fake, k=3)
    for batch in (7, 1000):
        p, r = precision_recall(real, fake, k=3, batch=batch)
        assert (p.item(), r.item()) == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # a non-trivial case


def test_precision_recall_extremes():
    real = gaussian(200, 8, seed=16)
    assert [v.item() for v in precision_recall(real, real.clone())] == [1.0, 1.0]
    assert [v.item() for v in precision_recall(real, real + 100.0)] == [0.0, 0.0]
    narrow = gaussian(200, 8, seed=17, scale=0.2)  # inside the real support, covering little of it
    p, r = precision_recall(real, narrow)
    assert p.item() > 0.9 and r.item() < 0.3


def numpy_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    logits = logits[np.random.RandomState(2020).permutation(len(logits))].astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        kl = (part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_hand_computation():
    logits = torch.randn(57, 1008, generator=torch.Generator().manual_seed(18)) * 3
    mean, std = inception_score(logits, splits=10)
    assert (mean.item(), std.item()) == pytest.approx(numpy_inception_score(logits.numpy(), 10), rel=1e-10)


def test_inception_score_known_values_and_torchmetrics():
    confident = torch.nn.functional.one_hot(torch.arange(100) % 10, 1008).double() * 60  # 10 classes, each split
    assert inception_score(confident, splits=10, shuffle_seed=None)[0].item() == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.zeros(20, 1008), splits=10)[0].item() == pytest.approx(1.0)
    logits = torch.randn(40, 1008, generator=torch.Generator().manual_seed(19)) * 2
    with pytest.warns(UserWarning, match="save all extracted features"):
        metric = InceptionScore(feature=PassThrough(1008), splits=1)
    metric.update(logits)
    with pytest.warns(UserWarning, match="degrees of freedom"):  # its std of one split
        expected = metric.compute()[0].item()
    assert inception_score(logits, splits=1)[0].item() == pytest.approx(expected, rel=1e-5)
