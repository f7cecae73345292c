"""KID's bootstrap intervals: centred on the estimate, paired, and reading a real change."""

import pytest
import torch

from bigroc.metrics.maths import kid, kid_bootstrap
from bigroc.metrics.reference import ReferenceStats
from bigroc.metrics.scores import GenerativeScores, kid_intervals


def _gauss(n: int, d: int = 16, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_bootstrap_is_centred_on_the_full_set_estimate():
    real, fake = _gauss(400, seed=1), _gauss(300, shift=0.3, seed=2)
    exact, _ = kid(real, fake, subsets=1, subset_size=10_000)  # one draw of all rows: the plain estimate
    draws = kid_bootstrap(real, [fake], draws=400)[:, 0]
    assert draws.shape == (400,)
    assert abs(float(draws.mean() - exact)) < 0.1 * float(exact)
    low, high = torch.quantile(draws, torch.tensor([0.025, 0.975], dtype=draws.dtype))
    assert low < exact < high


def test_pairs_of_copies_are_left_out():
    """A set and the same set with every row drawn twice have the same kernel structure; only
    leaving out the pairs of copies keeps a duplicated draw from looking closer to itself."""
    real, fake = _gauss(200, seed=3), _gauss(200, seed=4)  # one distribution: KID near zero
    draws = kid_bootstrap(real, [fake], draws=300)[:, 0]
    # without leaving out copies each draw would add about mean k(x, x) / n > 0 per set
    assert abs(float(draws.mean())) < 3 * float(draws.std()) / 300**0.5 + 1e-3


def test_paired_sets_give_the_change():
    real, fake = _gauss(300, seed=5), _gauss(300, shift=0.5, seed=6)
    closer = 0.5 * fake  # every image moved towards the real distribution's mean
    d = kid_bootstrap(real, [fake, fake.clone(), closer], draws=200)
    assert torch.equal(d[:, 0], d[:, 1])  # one draw for every set: identical sets agree exactly
    assert bool(((d[:, 2] - d[:, 0]) < 0).all())


def test_sets_of_other_sizes_are_refused():
    with pytest.raises(ValueError, match="one size"):
        kid_bootstrap(_gauss(50), [_gauss(20), _gauss(21)])


def test_kid_intervals_from_the_metric_states():
    real = _gauss(256, seed=7)
    ref = ReferenceStats.from_features(real)
    base, boosted = GenerativeScores(ref, kid_subset_size=64), GenerativeScores(ref, kid_subset_size=64)
    fake = _gauss(128, shift=0.6, seed=8)
    idx = torch.arange(128)
    base.update(fake, idx)
    boosted.update(0.3 * fake, idx)
    out = kid_intervals(base, boosted, draws=300)
    assert set(out) == {f"{k}_ci_{side}" for k in ("base/kid", "boosted/kid", "boosted/kid_change")
                        for side in ("low", "high")}
    assert out["base/kid_ci_low"] < base.compute()["kid_mean"] < out["base/kid_ci_high"]
    assert out["boosted/kid_change_ci_high"] < 0  # the moved images are closer, and the interval says so
    assert kid_intervals(base, boosted, draws=0) == {}
