"""FID on real Inception features of CIFAR-10 images: properties and torchmetrics agreement."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from bigroc.metrics import GenerativeScores, ReferenceStats, frechet_distance
from bigroc.metrics.maths import moments_from_sums, psd_factor

HALF = 20


def moments(f: torch.Tensor):
    f = f.double()
    return moments_from_sums(f.sum(0), f.T @ f, f.shape[0])


@pytest.fixture(scope="module")
def noise_features(inception) -> torch.Tensor:
    noise = torch.randint(0, 256, (HALF, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return inception(noise)


def test_fid_zero_for_same_set_and_real_pairs_closer_than_noise(real_features, noise_features):
    a, b = moments(real_features[:HALF]), moments(real_features[HALF:])
    factor = psd_factor(a[1])  # one 2048-dim eigendecomposition, shared by the three distances
    assert abs(frechet_distance(*a, *a, sigma1_factor=factor).item()) < 1e-6
    real_real = frechet_distance(*a, *b, sigma1_factor=factor).item()
    real_noise = frechet_distance(*a, *moments(noise_features), sigma1_factor=factor).item()
    # FID is biased upward at 20 samples (real-real is far from 0); only the ordering is robust
    assert 0 < real_real < 0.5 * real_noise


@pytest.mark.slow  # two 2048-dim eigendecompositions: ~10-60 s on a small shared CPU
def test_generative_scores_fid_equals_torchmetrics_in_2048_dims(real_features):
    class PassThrough(torch.nn.Module):
        num_features = 2048

        def forward(self, x):
            return x

    real, fake = real_features[:HALF], real_features[HALF:]
    expected = FrechetInceptionDistance(feature=PassThrough(), reset_real_features=False)
    expected.update(real, real=True)
    expected.update(fake, real=False)
    scores = GenerativeScores(ReferenceStats.from_features(real), kid_subsets=2)
    scores.update(fake, torch.arange(HALF))
    assert scores.compute()["fid"] == pytest.approx(expected.compute().item(), rel=1e-5)
