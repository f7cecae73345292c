"""``GenerativeScores``: FID, sFID, KID, precision/recall (and IS) of one stage's images, DDP-exact."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from bigroc import keys
from bigroc.metrics.fid_infinity import fid_infinity
from bigroc.metrics.maths import (frechet_distance, inception_score, kid, kid_bootstrap, moments_from_sums,
                                precision_recall)
from bigroc.metrics.reference import ReferenceStats

IS_SPLITS = 10
MIN_FID_INF = 4  # the fewest images FID-infinity's subsets can be drawn from


def _cat(state: Tensor | list[Tensor], empty: Tensor) -> Tensor:
    if isinstance(state, list) and not state:
        return empty
    return dim_zero_cat(state)


class GenerativeScores(Metric):
    """Scores of generated images against fixed reference statistics.

    The caller runs the Inception network once per image and passes features (and logits
    for IS) with each sample's *global* index. States:

    - FID: float64 running sums of features and of their outer products, and a count,
      all reduced by ``sum``: memory is flat in the number of samples. sFID (where the
      reference has spatial statistics): the same sums of the spatial features.
    - KID, precision/recall, IS: the features (logits) of samples with index
      ``< max_features`` only, gathered across processes and sorted by index before use,
      so any sharding or update order gives the numbers one process seeing everything
      would. IS is therefore computed on those first ``max_features`` samples (10 splits).

    The reference is a plain attribute, not a metric state: it is never summed across
    processes and never written into checkpoints. Use ``update`` (``forward`` only updates:
    a per-batch FID would cost an eigendecomposition each step).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(
        self,
        reference: ReferenceStats,
        max_features: int = 10000,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        pr_k: int = 3,
        with_is: bool = False,
        num_logits: int = 1008,
    ) -> None:
        super().__init__()
        self.reference = reference
        self.num_features = int(reference.mu.numel())
        self.max_features = max_features
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.pr_k = pr_k
        self.with_is = with_is
        self.num_logits = num_logits
        d = self.num_features
        self.add_state("feature_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("outer_sum", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_samples", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.with_sfid = reference.mu_s is not None
        if self.with_sfid:
            s = int(reference.mu_s.numel())
            self.add_state("spatial_sum", torch.zeros(s, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("spatial_outer_sum", torch.zeros(s, s, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("kept_features", [], dist_reduce_fx="cat")
        self.add_state("kept_indices", [], dist_reduce_fx="cat")
        if with_is:
            self.add_state("kept_logits", [], dist_reduce_fx="cat")

    def _check(self, features: Tensor, indices: Tensor, logits: Tensor | None, spatial: Tensor | None) -> None:
        b = features.shape[0]
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"features must be (B, {self.num_features}), got {tuple(features.shape)}")
        if indices.shape != (b,) or indices.is_floating_point():
            raise ValueError(f"indices must be integer ({b},), got {indices.dtype} {tuple(indices.shape)}")
        if self.with_is and (logits is None or tuple(logits.shape) != (b, self.num_logits)):
            got = None if logits is None else tuple(logits.shape)
            raise ValueError(f"with_is=True: pass logits ({b}, {self.num_logits}) with every update, got {got}")
        if not self.with_is and logits is not None:
            raise ValueError("logits were passed but the metric was built with with_is=False")
        if self.with_sfid and (spatial is None or spatial.shape != (b, self.spatial_sum.numel())):
            got = None if spatial is None else tuple(spatial.shape)
            raise ValueError(f"the reference has spatial statistics: pass spatial ({b}, {self.spatial_sum.numel()}) "
                             f"features with every update, got {got}")

    def update(self, features: Tensor, indices: Tensor, logits: Tensor | None = None,
               spatial: Tensor | None = None) -> None:
        """Add a batch. Shape: features (B, D) float, indices (B,) int64 global, logits (B, C),
        spatial (B, S) (needed where the reference has spatial statistics; else ignored)."""
        self._check(features, indices, logits, spatial)
        f64 = features.detach().double()
        self.feature_sum += f64.sum(0)
        self.outer_sum += f64.T @ f64
        if self.with_sfid:
            s64 = spatial.detach().double()
            self.spatial_sum += s64.sum(0)
            self.spatial_outer_sum += s64.T @ s64
        self.num_samples += features.shape[0]
        keep = indices < self.max_features
        self.kept_features.append(features.detach()[keep].float())
        self.kept_indices.append(indices[keep].long())
        if self.with_is:
            self.kept_logits.append(logits.detach()[keep].float())

    def forward(self, features: Tensor, indices: Tensor, logits: Tensor | None = None,
                spatial: Tensor | None = None) -> None:
        """Same as :meth:`update`; returns nothing."""
        self.update(features, indices, logits, spatial)

    def _sync_dist(self, dist_sync_fn=gather_all_tensors, process_group=None) -> None:
        # A process that kept nothing would otherwise send torchmetrics' 1-D float
        # placeholder, whose shape and dtype differ from the others' and break the gather.
        shapes = {"kept_features": (0, self.num_features), "kept_indices": (0,)}
        if self.with_is:
            shapes["kept_logits"] = (0, self.num_logits)
        for name, shape in shapes.items():
            if not getattr(self, name):
                dtype = torch.long if name == "kept_indices" else torch.float32
                setattr(self, name, [torch.zeros(shape, dtype=dtype, device=self.feature_sum.device)])
        super()._sync_dist(dist_sync_fn, process_group)

    def _kept(self) -> tuple[Tensor, Tensor | None]:
        """Kept features (and logits) ordered by global index, one row per index."""
        # after a DDP sync the cat states are tensors, before it lists (possibly empty)
        indices = _cat(self.kept_indices, torch.zeros(0, dtype=torch.long))
        features = _cat(self.kept_features, torch.zeros(0, self.num_features))
        order = torch.argsort(indices.cpu(), stable=True).to(indices.device)
        indices = indices[order]
        first = torch.ones_like(indices, dtype=torch.bool)
        first[1:] = indices[1:] != indices[:-1]
        if not bool(first.all()):
            warnings.warn(
                "GenerativeScores saw some sample indices more than once (a padding distributed sampler?); "
                "KID/PR/IS use each once, FID's running sums count the repeats",
                stacklevel=3,
            )
        logits = _cat(self.kept_logits, torch.zeros(0, self.num_logits))[order][first] if self.with_is else None
        return features[order][first], logits

    def compute(self) -> dict[str, float]:
        """``fid``, ``fid_inf``, ``kid_mean``, ``kid_std``, ``precision``, ``recall`` (+ ``sfid``,
        ``is_mean``, ``is_std``). ``fid_inf`` (FID-infinity, :mod:`bigroc.metrics.fid_infinity`)
        is computed on the first ``max_features`` samples, where there are at least 4.

        Without reference features (statistics-only reference): no KID, precision or recall.
        """
        n = int(self.num_samples)
        mu, sigma = moments_from_sums(self.feature_sum, self.outer_sum, n)
        ref = self.reference
        device = mu.device
        fid = frechet_distance(ref.mu.to(device), ref.sigma.to(device), mu, sigma,
                               sigma1_factor=ref.sigma_factor().to(device))
        fake, logits = self._kept()
        scores = {"fid": fid}
        if fake.shape[0] >= MIN_FID_INF:
            scores["fid_inf"] = fid_infinity([fake], ref.mu.to(device), ref.sigma.to(device),
                                             factor=ref.sigma_factor().to(device), draws=0)["value"][0]
        if self.with_sfid:
            mu_s, sigma_s = moments_from_sums(self.spatial_sum, self.spatial_outer_sum, n)
            scores["sfid"] = frechet_distance(ref.mu_s.to(device), ref.sigma_s.to(device), mu_s, sigma_s,
                                              sigma1_factor=ref.sigma_factor(spatial=True).to(device))
        if ref.features.shape[0] > 0:  # a reference of statistics only gives FID and FID-inf alone
            real = ref.features.to(fake.device)
            scores["kid_mean"], scores["kid_std"] = kid(real, fake, self.kid_subsets, self.kid_subset_size)
            scores["precision"], scores["recall"] = precision_recall(real, fake, k=self.pr_k)
        if self.with_is:
            scores["is_mean"], scores["is_std"] = inception_score(logits, splits=IS_SPLITS)
        return {name: float(value) for name, value in scores.items()}


def _paired_kept(base: GenerativeScores, boosted: GenerativeScores) -> tuple[Tensor, Tensor]:
    """The kept features of both stages, every process's images (DDP; a no-op alone)."""
    with base.sync_context(), boosted.sync_context():
        (f_base, _), (f_boosted, _) = base._kept(), boosted._kept()
    return f_base, f_boosted


def _interval_keys(name: str, low: Tensor, high: Tensor) -> dict[str, float]:
    """``base/<name>_ci_*``, ``boosted/<name>_ci_*``, ``boosted/<name>_change_ci_*`` from
    (base, boosted, change) bounds."""
    names = [keys.score(keys.BASE, name), keys.score(keys.BOOSTED, name), keys.score(keys.BOOSTED, f"{name}_change")]
    return {**{f"{n}_ci_low": float(v) for n, v in zip(names, low)},
            **{f"{n}_ci_high": float(v) for n, v in zip(names, high)}}


def kid_intervals(base: GenerativeScores, boosted: GenerativeScores, draws: int = 1000,
                  level: float = 0.95) -> dict[str, float]:
    """Bootstrap intervals (percentile, ``level``) of KID for the base and boosted images and
    of its change, from one paired bootstrap over the images (:func:`kid_bootstrap`):
    ``base/kid_ci_low``, ``base/kid_ci_high``, ``boosted/kid_ci_*``, ``boosted/kid_change_ci_*``
    (boosted minus base: an interval below zero says boosting lowered KID). Empty without
    reference features or with ``draws=0``. Under DDP every process must call it (it gathers)."""
    real = base.reference.features
    if draws <= 0 or real.shape[0] == 0:
        return {}
    f_base, f_boosted = _paired_kept(base, boosted)
    d = kid_bootstrap(real.to(f_base.device), [f_base, f_boosted], draws)
    d = torch.cat([d, d[:, 1:] - d[:, :1]], dim=1)  # base, boosted, change
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=d.dtype)
    low, high = torch.quantile(d, q.to(d.device), dim=0)
    return _interval_keys("kid", low, high)


def fid_inf_intervals(base: GenerativeScores, boosted: GenerativeScores, draws: int = 50,
                      level: float = 0.95) -> dict[str, float]:
    """Bootstrap intervals (``level``) of FID-infinity for the base and boosted images and of
    its change, from one paired bootstrap (:func:`bigroc.metrics.fid_infinity.fid_infinity`):
    ``base/fid_inf_ci_*``, ``boosted/fid_inf_ci_*``, ``boosted/fid_inf_change_ci_*``. Computed
    on the same first ``max_features`` images as ``fid_inf``. Empty with ``draws=0`` or fewer
    than 4 images. Under DDP every process must call it (it gathers)."""
    if draws <= 0:
        return {}
    f_base, f_boosted = _paired_kept(base, boosted)
    if f_base.shape[0] < MIN_FID_INF:
        return {}
    ref, device = base.reference, f_base.device
    r = fid_infinity([f_base, f_boosted], ref.mu.to(device), ref.sigma.to(device),
                     factor=ref.sigma_factor().to(device), draws=draws, level=level)
    return _interval_keys("fid_inf", torch.cat([r["low"], r["change_low"]]), torch.cat([r["high"], r["change_high"]]))
