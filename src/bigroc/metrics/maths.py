"""The scores as pure tensor functions: Fréchet distance, KID, improved precision/recall, IS.

Inputs are feature matrices (N, D) or Gaussian moments; everything is computed in float64
on the inputs' device and returned as 0-dim float64 tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def moments_from_sums(total: Tensor, outer: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) from running sums.

    ``total`` = sum of the features (D,), ``outer`` = sum of their outer products (D, D),
    ``n`` = how many were summed (at least 2).
    """
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {n}")
    mu = total.double() / n
    sigma = (outer.double() - n * torch.outer(mu, mu)) / (n - 1)
    return mu, sigma


def psd_factor(sigma: Tensor) -> Tensor:
    """F (D, r) with F F^T = sigma: eigenvectors scaled by root eigenvalues, keeping the r
    directions above numerical rank (eigenvalue > max * D * float64 eps)."""
    sigma = sigma.double()
    values, vectors = torch.linalg.eigh((sigma + sigma.T) / 2)
    keep = values > values.max().clamp(min=0) * sigma.shape[0] * torch.finfo(torch.float64).eps
    return vectors[:, keep] * values[keep].sqrt()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor, *,
                     sigma1_factor: Tensor | None = None) -> Tensor:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)). With
    sigma1 = F F^T (:func:`psd_factor`), the non-zero eigenvalues of sigma1 sigma2 are those
    of the small symmetric PSD matrix F^T sigma2 F, so ``eigvalsh`` applies, no complex
    round-off appears, and sigma1's numerical null space (fewer samples than dimensions)
    adds nothing. ``sigma1_factor`` may be passed to reuse F for a fixed reference.
    Where sigma2 has lower rank than sigma1 (fewer fake samples than dimensions),
    round-off in its null space biases the result by ~1e-4, as in torchmetrics and SciPy.

    Shape: mu (D,), sigma (D, D) -> 0-dim float64.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    factor = psd_factor(sigma1) if sigma1_factor is None else sigma1_factor.double()
    middle = factor.T @ sigma2 @ factor
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt


def _poly_kernel(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b.T / a.shape[1] + 1) ** 3


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    m = x.shape[0]
    k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / m**2


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Kernel Inception Distance (Binkowski et al. 2018): mean and std of unbiased MMD^2.

    Kernel k(a, b) = (a.b / D + 1)^3. Each of ``subsets`` draws takes ``subset_size`` rows
    (clipped to the smaller set) without replacement from each set, from a generator seeded
    with ``seed``, so the result is deterministic. The std is the population std over
    draws, as torch-fidelity and torchmetrics report it.

    Shape: real (M, D), fake (N, D) -> (0-dim float64, 0-dim float64).
    """
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {real.shape[0]} real and {fake.shape[0]} fake")
    real, fake = real.double(), fake.double()
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        pick_real = torch.randperm(real.shape[0], generator=gen)[:m].to(real.device)
        pick_fake = torch.randperm(fake.shape[0], generator=gen)[:m].to(fake.device)
        scores.append(_mmd2_unbiased(real[pick_real], fake[pick_fake]))
    scores = torch.stack(scores)
    return scores.mean(), scores.std(unbiased=False)


def kid_bootstrap(real: Tensor, fakes: list[Tensor], draws: int = 1000, max_rows: int = 2000,
                  seed: int = 0) -> Tensor:
    """KID (unbiased MMD^2, the kernel of :func:`kid`) of each set in ``fakes``, over bootstrap
    resamples: the distribution its confidence interval is read from.

    Every draw resamples, with replacement, the first ``max_rows`` rows of ``real`` and of the
    generated sets; all sets in ``fakes`` get the same draw, so for paired sets (the base and
    boosted versions of the same images) each draw's difference is a draw of the change. The
    within-set kernel means leave out the pairs of copies of one row, as the unbiased
    estimator leaves out i = j. With at most ``max_rows`` rows the interval is that of an
    estimate on ``max_rows`` images: for larger sets it is wider than theirs, never narrower.

    Shape: real (M, D), fakes [(N, D), ...] of one N -> (draws, len(fakes)) float64.
    """
    if len({f.shape[0] for f in fakes}) != 1:
        raise ValueError(f"paired bootstrap needs sets of one size, got {[tuple(f.shape) for f in fakes]}")
    real = real[:max_rows].double()
    fakes = [f[:max_rows].double() for f in fakes]
    if min(real.shape[0], fakes[0].shape[0]) < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {real.shape[0]} real and {fakes[0].shape[0]} fake")
    gen = torch.Generator().manual_seed(seed)

    def counts(n: int) -> Tensor:  # (draws, n): how often each row is drawn (drawn on the CPU: same on any device)
        picks = torch.randint(n, (draws, n), generator=gen)
        ones = torch.ones(draws, n, dtype=torch.float64)
        return torch.zeros(draws, n, dtype=torch.float64).scatter_add_(1, picks, ones).to(real.device)

    def within(x: Tensor, c: Tensor) -> Tensor:  # mean kernel over pairs of distinct copies
        k = _poly_kernel(x, x)
        pairs = c.sum(1) ** 2 - c.square().sum(1)
        return (((c @ k) * c).sum(1) - c.square() @ k.diagonal()) / pairs

    c_real, c_fake = counts(real.shape[0]), counts(fakes[0].shape[0])
    n_real, n_fake = c_real.sum(1), c_fake.sum(1)
    real_term = within(real, c_real)
    out = [real_term + within(f, c_fake) - 2 * ((c_fake @ _poly_kernel(f, real)) * c_real).sum(1) / (n_fake * n_real)
           for f in fakes]
    return torch.stack(out, dim=1)


def _squared_distances(a: Tensor, b: Tensor) -> Tensor:
    d = a.square().sum(1, keepdim=True) + b.square().sum(1) - 2 * a @ b.T
    return d.clamp(min=0)


def _kth_neighbour_radii(x: Tensor, k: int, batch: int) -> Tensor:
    """Squared distance from each row of ``x`` to its k-th nearest other row."""
    if x.shape[0] <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} samples, got {x.shape[0]}")
    # k + 1 smallest include the point itself (distance 0), so index k is the k-th other row.
    parts = [_squared_distances(rows, x).topk(k + 1, dim=1, largest=False).values[:, k] for rows in x.split(batch)]
    return torch.cat(parts)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its samples, each ball reaching the
    sample's k-th nearest neighbour within the same set. Precision: share of fake samples
    inside the real manifold; recall: share of real samples inside the fake manifold.
    Distances are computed ``batch`` rows at a time, so memory is O(batch * max(M, N)).

    Shape: real (M, D), fake (N, D) -> (0-dim float64, 0-dim float64).
    """
    real, fake = real.double(), fake.double()
    radii_real = _kth_neighbour_radii(real, k, batch)
    radii_fake = _kth_neighbour_radii(fake, k, batch)
    fake_covered = []
    real_covered = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    for rows, rows_radii in zip(fake.split(batch), radii_fake.split(batch)):
        d = _squared_distances(rows, real)
        fake_covered.append((d <= radii_real[None, :]).any(dim=1))
        real_covered |= (d <= rows_radii[:, None]).any(dim=0)
    precision = torch.cat(fake_covered).double().mean()
    return precision, real_covered.double().mean()


def inception_score(logits: Tensor, splits: int = 10, shuffle_seed: int | None = 2020) -> tuple[Tensor, Tensor]:
    """Inception Score: exp(E_x KL(p(y|x) || p(y))) per split, its mean and population std.

    Rows are shuffled with NumPy's ``RandomState(shuffle_seed)`` first (as torch-fidelity
    does; it keeps class-ordered batches from skewing the splits); split ``i`` holds rows
    ``i*N//splits`` to ``(i+1)*N//splits``; p(y) is each split's mean of p(y|x).

    Shape: logits (N, C) -> (0-dim float64, 0-dim float64).
    """
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} samples, got {n}")
    if shuffle_seed is not None:
        order = np.random.RandomState(shuffle_seed).permutation(n)
        logits = logits[torch.from_numpy(order).to(logits.device)]
    log_p = logits.double().log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = part.exp().mean(dim=0).log()
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(kl.exp())
    scores = torch.stack(scores)
    return scores.mean(), scores.std(unbiased=False)
