"""FID-infinity: exact subset FIDs, an extrapolation nearer the true distance than FID-N on
Gaussian features whose Fréchet distance is known in closed form, and intervals that cover it."""

import pytest
import torch

from bigroc.metrics.fid_infinity import _Rows, fid_infinity, subset_sizes
from bigroc.metrics.maths import frechet_distance, psd_factor
from bigroc.metrics.reference import ReferenceStats
from bigroc.metrics.scores import GenerativeScores, fid_inf_intervals
from bigroc.summary_table import score_table


def _population(d: int, seed: int = 123):
    """Reference and generator Gaussians: decaying spectra in random bases, shifted means."""
    g = torch.Generator().manual_seed(seed)

    def covariance(scale: float) -> torch.Tensor:
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        return (q * (scale / (1 + torch.arange(d, dtype=torch.float64)) ** 1.2)) @ q.T

    s_ref, s_gen = covariance(1.0), covariance(1.3)
    mu_ref = torch.zeros(d, dtype=torch.float64)
    mu_gen = 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
    true = float(frechet_distance(mu_ref, s_ref, mu_gen, s_gen))
    return mu_ref, s_ref, mu_gen, torch.linalg.cholesky(s_gen), true


def _draw(mu: torch.Tensor, chol: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    z = torch.randn(n, mu.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mu + z @ chol.T


@pytest.mark.parametrize("n", [20, 200])  # fewer rows than the reference's rank (n x n route), and more
def test_subset_fid_equals_the_frechet_distance_of_its_rows(n):
    mu_ref, s_ref, mu_gen, chol, _ = _population(64)
    x = _draw(mu_gen, chol, 300, seed=0)
    factor = psd_factor(s_ref)
    rows = torch.randperm(300, generator=torch.Generator().manual_seed(1))[:n]
    rows = torch.cat([rows, rows[:3]])  # repeats count as rows (the bootstrap's draws have them)
    expected = frechet_distance(mu_ref, s_ref, x[rows].mean(0), torch.cov(x[rows].T), sigma1_factor=factor)
    got = _Rows(x, mu_ref, s_ref, factor).fid(rows)
    assert float(got) == pytest.approx(float(expected), rel=1e-7)  # round-off in the rank-deficient side


def test_subset_sizes_span_the_range_evenly_in_one_over_n():
    sizes = subset_sizes(400, points=8, min_fraction=0.25)
    assert sizes[0] == 100 and sizes[-1] == 400 and sizes == sorted(set(sizes)) and len(sizes) == 8
    inverse = [1 / s for s in sizes]
    steps = [a - b for a, b in zip(inverse, inverse[1:])]
    assert max(steps) / min(steps) < 1.1
    with pytest.raises(ValueError, match="at least 4 images"):
        subset_sizes(3)


def test_extrapolation_lands_nearer_the_true_distance_than_fid_n_and_the_interval_covers_it():
    """200 images of 64-D features: FID-200 overstates the distance; FID-infinity removes most of
    that bias (on average over seeds), and its 95% interval holds the true distance in most seeds."""
    mu_ref, s_ref, mu_gen, chol, true = _population(64)
    factor = psd_factor(s_ref)
    fid_n_error, fid_inf_error, covered = [], [], 0
    seeds = range(12)
    for seed in seeds:
        x = _draw(mu_gen, chol, 200, seed)
        r = fid_infinity([x], mu_ref, s_ref, factor=factor, draws=50, seed=seed)
        fid_n = float(frechet_distance(mu_ref, s_ref, x.mean(0), torch.cov(x.T), sigma1_factor=factor))
        fid_n_error.append(fid_n - true)
        fid_inf_error.append(float(r["value"][0]) - true)
        covered += float(r["low"][0]) <= true <= float(r["high"][0])
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(fid_n_error) > 0  # FID-N's bias: the known upward one
    assert abs(mean(fid_inf_error)) < 0.6 * mean(fid_n_error)
    assert mean([abs(e) for e in fid_inf_error]) < mean([abs(e) for e in fid_n_error])
    assert covered >= 9  # of 12


def test_paired_sets_share_every_draw_and_read_a_real_change():
    mu_ref, s_ref, mu_gen, chol, _ = _population(32)
    x = _draw(mu_gen, chol, 150, seed=3)
    closer = mu_ref + 0.5 * (x - mu_gen)  # the same images moved towards the reference
    r = fid_infinity([x, x.clone(), closer], mu_ref, s_ref, draws=30)
    assert float(r["value"][0]) == pytest.approx(float(r["value"][1]), abs=1e-12)
    # identical sets: no change in any draw (to round-off of where the copy lies in memory)
    assert float(r["change_low"][0]) == pytest.approx(0, abs=1e-12) == float(r["change_high"][0])
    assert float(r["change_high"][1]) < 0  # the moved set: lower, and the interval says so
    assert all(bool(torch.isfinite(r[k]).all()) for k in ("low", "high", "change_low", "change_high"))


def test_no_draws_gives_the_value_alone():
    mu_ref, s_ref, mu_gen, chol, _ = _population(16)
    r = fid_infinity([_draw(mu_gen, chol, 40, 0)], mu_ref, s_ref, draws=0)
    assert torch.isfinite(r["value"]).all() and torch.isnan(r["low"]).all()
    with pytest.raises(ValueError, match="one shape"):
        fid_infinity([torch.zeros(40, 16), torch.zeros(39, 16)], mu_ref, s_ref)


def test_scores_report_fid_inf_with_intervals_in_metrics_and_the_table():
    mu_ref, s_ref, mu_gen, chol, _ = _population(16)
    reference = ReferenceStats.from_features(_draw(mu_ref, torch.linalg.cholesky(s_ref), 500, 7).float())
    x = _draw(mu_gen, chol, 120, 8).float()
    stages = {}
    for stage, feats in (("base", x), ("boosted", 0.5 * x)):
        m = GenerativeScores(reference, kid_subset_size=50)
        m.update(feats, torch.arange(feats.shape[0]))
        stages[stage] = m
    out = {f"{s}/{k}": v for s, m in stages.items() for k, v in m.compute().items()}
    alone = fid_infinity([x], reference.mu, reference.sigma, draws=0)["value"][0]
    assert out["base/fid_inf"] == pytest.approx(float(alone), rel=1e-6)
    out.update(fid_inf_intervals(stages["base"], stages["boosted"], draws=20))
    for key in ("base/fid_inf_ci_low", "boosted/fid_inf_ci_high", "boosted/fid_inf_change_ci_low"):
        assert isinstance(out[key], float)
    assert fid_inf_intervals(stages["base"], stages["boosted"], draws=0) == {}
    row = next(line for line in score_table(out).splitlines() if line.startswith("FID-inf"))
    assert f"[{out['base/fid_inf_ci_low']:.4g}, {out['base/fid_inf_ci_high']:.4g}]" in row
    assert f"{out['boosted/fid_inf_change_ci_low']:+.4g}" in row
