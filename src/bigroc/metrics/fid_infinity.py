"""FID-infinity (Chong & Forsyth, CVPR 2020): FID freed of its bias in the number of images.

FID on N images overstates the Fréchet distance of the generator's distribution by roughly
k / N. FID-infinity computes FID on random subsets of several sizes n, fits the line
FID_n = a + b / n by least squares and reports its intercept a, the value at 1 / n = 0.
The reference statistics are taken as exact (as in the paper): only the generated side's
bias is removed.

Every subset's FID costs one small symmetric eigenproblem, not a D x D one: with the
reference covariance factored as F F^T (:func:`bigroc.metrics.maths.psd_factor`) and the
subset's centred features Y (n, D), the trace term of FID needs the eigenvalues of
(Y F)^T (Y F), which are those of the n x n matrix (Y F)(Y F)^T. The rows Z = X F are
projected once, so a subset's FID is an index and an ``eigvalsh`` of size min(n, rank).

Its interval comes from a bootstrap of the whole procedure: each draw resamples the N
images with replacement and fits again. In the bootstrap world the true distance is the
plug-in one of the images themselves (covariance over N), so each draw's error is its
estimate minus that; the interval is the estimate minus the 97.5% and 2.5% quantiles of
those errors (the basic bootstrap). Paired sets (base and boosted versions of the same
images) share every draw, which gives an interval for the change.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bigroc.metrics.maths import psd_factor


class _Rows:
    """One set of features, projected once onto the reference: the FID of any multiset of its rows."""

    def __init__(self, features: Tensor, mu_ref: Tensor, sigma_ref: Tensor, factor: Tensor) -> None:
        self.x = features.double().to(factor.device)
        self.z = self.x @ factor.double()
        self.sq = self.x.square().sum(1)
        self.mu_ref = mu_ref.double().to(factor.device)
        self.trace_ref = sigma_ref.double().trace().to(factor.device)

    def fid(self, rows: Tensor, plug_in: bool = False) -> Tensor:
        """FID of ``rows`` (an index, repeats allowed) against the reference; covariance over
        n - 1, or over n with ``plug_in`` (the distance of the rows' empirical distribution)."""
        n = rows.numel()
        div = n if plug_in else n - 1
        mu = self.x[rows].mean(0)
        trace = (self.sq[rows].sum() - n * mu.square().sum()) / div
        zc = self.z[rows] - self.z[rows].mean(0)
        gram = zc @ zc.T if n <= zc.shape[1] else zc.T @ zc
        trace_sqrt = torch.linalg.eigvalsh(gram / div).clamp(min=0).sqrt().sum()
        return (mu - self.mu_ref).square().sum() + trace + self.trace_ref - 2 * trace_sqrt


def subset_sizes(n: int, points: int = 8, min_fraction: float = 0.25) -> list[int]:
    """``points`` subset sizes from ``min_fraction * n`` to ``n``, evenly spaced in 1 / size
    (where the fit is a line), distinct, the largest being ``n`` itself."""
    low = max(int(round(min_fraction * n)), 2)
    if n < 4 or low >= n:
        raise ValueError(f"FID-infinity needs at least 4 images and min_fraction < 1, got {n} images and "
                         f"min_fraction={min_fraction}")
    inverse = torch.linspace(1 / low, 1 / n, points, dtype=torch.float64)
    return sorted({int(round(float(1 / v))) for v in inverse})


def _fit(rows: _Rows, pool: Tensor, sizes: list[int], gen: torch.Generator) -> Tensor:
    """Intercept of FID against 1 / n over random subsets of ``pool`` (indices into ``rows``)."""
    fids = []
    for n in sizes:
        pick = pool if n == pool.numel() else pool[torch.randperm(pool.numel(), generator=gen)[:n].to(pool.device)]
        fids.append(rows.fid(pick))
    design = torch.stack([torch.ones(len(sizes)), 1 / torch.tensor(sizes, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, torch.stack(fids).cpu()[:, None]).solution
    return coef[0, 0]


def fid_infinity(sets: list[Tensor], mu_ref: Tensor, sigma_ref: Tensor, *, factor: Tensor | None = None,
                 draws: int = 50, level: float = 0.95, points: int = 8, min_fraction: float = 0.25,
                 seed: int = 0) -> dict[str, Tensor]:
    """FID-infinity of each feature set in ``sets`` with its bootstrap interval.

    ``sets``: (N, D) feature matrices of one N (paired rows where there are several: the same
    images before and after a change); ``factor``: :func:`psd_factor` of ``sigma_ref`` (passed to
    reuse it). The subsets of each size are the same rows in every set, and every bootstrap
    draw resamples the same rows in every set.

    Returns float64 tensors: ``value`` (S,), FID-infinity per set; ``low``, ``high`` (S,), its
    ``level`` interval (empty-free: NaN where ``draws`` is 0); ``change_low``, ``change_high``
    (S - 1,), the interval of each set's FID-infinity minus the first set's.
    """
    if not sets or len({tuple(s.shape) for s in sets}) != 1 or sets[0].ndim != 2:
        raise ValueError(f"FID-infinity needs feature sets of one shape (N, D), got {[tuple(s.shape) for s in sets]}")
    factor = psd_factor(sigma_ref) if factor is None else factor
    rows = [_Rows(s, mu_ref, sigma_ref, factor) for s in sets]
    n = sets[0].shape[0]
    sizes = subset_sizes(n, points, min_fraction)
    device = factor.device
    everything = torch.arange(n, device=device)

    def estimate(pool: Tensor, gen_seed: int) -> Tensor:  # the same subsets for every set
        return torch.stack([_fit(r, pool, sizes, torch.Generator().manual_seed(gen_seed)) for r in rows])

    value = estimate(everything, seed)
    nan = torch.full((len(sets),), float("nan"), dtype=torch.float64)
    out = {"value": value, "low": nan, "high": nan.clone(),
           "change_low": nan[1:].clone(), "change_high": nan[1:].clone()}
    if draws <= 0:
        return out
    plug_in = torch.stack([r.fid(everything, plug_in=True) for r in rows]).cpu()
    gen = torch.Generator().manual_seed(seed + 1)
    errors = []
    for b in range(draws):
        pool = torch.randint(n, (n,), generator=gen).to(device)
        errors.append(estimate(pool, seed + 2 + b) - plug_in)
    errors = torch.stack(errors)  # (draws, S)
    errors = torch.cat([errors, errors[:, 1:] - errors[:, :1]], 1)
    point = torch.cat([value, value[1:] - value[:1]])
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    err_low, err_high = torch.quantile(errors, q, dim=0)
    low, high = point - err_high, point - err_low
    s = len(sets)
    out.update(low=low[:s], high=high[:s], change_low=low[s:], change_high=high[s:])
    return out
