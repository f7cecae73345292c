"""What a boosting run scores with: the feature network, the reference set, the metrics.

``conf/metrics/*.yaml`` instantiates :class:`ScoringSpec`; :func:`prepare_scoring` turns it
into the pieces :class:`bigroc.lit.Boost` holds, or into one line saying why the run
cannot be scored (no reference data), in which case the run still boosts and saves.

References: ``dataset=cifar10`` (built in, 32x32) or ``dataset=npz`` with ``path``, a
reference batch the user brings (ADM's ImageNet ``VIRTUAL_imagenet*_labeled.npz``: ``mu``/
``sigma`` statistics and/or ``arr_0`` images). CIFAR-10 never scores images of another size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigroc import keys
from bigroc.data.cifar10 import CIFAR10DataModule
from bigroc.metrics import (
    HOW_TO_GET_HEAD,
    FeatureCache,
    GenerativeScores,
    InceptionNet,
    default_cache_dir,
    find_head_file,
    npz_reference_stats,
    read_head,
    reference_stats,
)


@dataclass
class ScoringSpec:
    """How to score (the ``metrics`` config group).

    Attributes:
        dataset: ``cifar10`` (built in) or ``npz`` (a reference batch at ``path``).
        ref_split, ref_samples: for CIFAR-10: ``train`` (the paper's) or ``test``, its first
            ``ref_samples`` images (default 10 000) or all of it (``ref_samples=None``).
        path: for ``npz``: the file; ``mu``/``sigma`` give FID, ``arr_0`` images give KID and
            precision/recall (and FID where there are no statistics).
        precision: the Inception network's arithmetic: ``"32"`` (float32, default) or
            ``"bf16"`` (autocast; faster where the hardware has bf16 units; its reference
            statistics are cached apart).
        cache_dir: where reference statistics are cached (default ``$BIGROC_CACHE`` or
            ``~/.cache/bigroc``).
        max_features: KID, precision/recall (and IS) use the first this many samples.
        kid_bootstrap: draws of the paired bootstrap that gives KID's 95% intervals (base,
            boosted, and their change; ``bigroc.metrics.kid_intervals``); 0: none.
        fid_inf_bootstrap: draws of the paired bootstrap that gives FID-infinity's 95%
            intervals (``bigroc.metrics.fid_inf_intervals``); 0: none.
        cache_base_features: keep the features of the generated (base) images on disk under
            ``cache_dir/features``, by content: a run that boosts the same images again (the
            next eps of a sweep) reads them back instead of running Inception on them.
        inception_score: report IS where the Inception head's weights are at hand.
        inception_weights: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (the head
            for IS); default: the torch hub cache, else a download where online.
        inception_download: allow that download (false: look locally only).
        batch_size: images per Inception pass: ``auto`` (50 on CPUs; on a GPU the largest
            batch that still raises throughput, probed once, see :mod:`bigroc.batch_size`) or
            a number.
    """

    dataset: str = "cifar10"
    ref_split: str = "train"
    ref_samples: int | None = 10000
    path: str | None = None
    precision: str = "32"
    cache_dir: str | None = None
    max_features: int = 10000
    cache_base_features: bool = True
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    kid_bootstrap: int = 1000
    fid_inf_bootstrap: int = 50
    pr_k: int = 3
    inception_score: bool = True
    inception_weights: str | None = None
    inception_download: bool = True
    batch_size: int | str = "auto"


@dataclass
class Scoring:
    """The ready pieces: ``scores`` for :class:`bigroc.lit.Boost`, and what to record.

    ``features`` is the :class:`~bigroc.metrics.features.InceptionNet` (one row per image:
    pool3, spatial, logits where the head is loaded; ``layout`` splits it), and
    ``base_features`` the same behind the on-disk cache (``cache_base_features``).
    """

    features: nn.Module
    base_features: nn.Module
    spec: ScoringSpec
    reference: Any
    info: dict[str, Any]

    @property
    def with_logits(self) -> bool:
        layout = getattr(self.features, "layout", None)  # feature networks without one give pool3 alone
        return layout is not None and layout.with_logits

    def new_scores(self) -> dict[str, nn.Module]:
        """Fresh base and boosted metric states (one pair per seed)."""
        s = self.spec
        return {stage: GenerativeScores(self.reference, max_features=s.max_features,
                                        kid_subsets=s.kid_subsets, kid_subset_size=s.kid_subset_size,
                                        pr_k=s.pr_k, with_is=self.with_logits)
                for stage in (keys.BASE, keys.BOOSTED)}


DATASETS = ("cifar10", "npz")
MAX_DRAWS = 100_000
CIFAR10_SIZE = 32


def _check_spec(spec: ScoringSpec) -> None:
    if spec.dataset not in DATASETS:
        raise ValueError(f"metrics.dataset must be one of {', '.join(DATASETS)}, got {spec.dataset!r}")
    if spec.dataset == "npz" and not spec.path:
        raise ValueError("metrics.dataset=npz needs metrics.path=REF.npz (a reference batch: mu/sigma and/or arr_0)")
    for name in ("kid_bootstrap", "fid_inf_bootstrap"):
        draws = getattr(spec, name)
        if isinstance(draws, bool) or not isinstance(draws, int) or not 0 <= draws <= MAX_DRAWS:
            raise ValueError(f"metrics.{name} must be a whole number of bootstrap draws from 0 (no interval) to "
                             f"{MAX_DRAWS}, got {draws!r}")


def check_reference_fits(spec: ScoringSpec | None, image_shape: tuple[int, int]) -> None:
    """Refuse to score images against a reference of another kind (before anything runs).

    The built-in CIFAR-10 reference is 32x32; larger images (ImageNet batches) need a
    reference of their own (``metrics=reference_npz metrics.path=REF.npz``).
    """
    if spec is None:
        return
    _check_spec(spec)
    if spec.dataset == "cifar10" and tuple(image_shape) != (CIFAR10_SIZE, CIFAR10_SIZE):
        height, width = image_shape
        raise ValueError(f"metrics=cifar10 scores against CIFAR-10 (32x32) but the images are {width}x"
                         f"{height}; pass a reference of their own (metrics=reference_npz metrics.path=REF.npz, "
                         "e.g. ADM's reference batch) or metrics=none")


def _reference(spec: ScoringSpec, data_root: str | Path, features: nn.Module, device):
    """The reference statistics and what to record about them."""
    common = {"precision": spec.precision, "cache_dir": spec.cache_dir, "max_features": spec.max_features,
              "extractor": features, "device": device, "batch_size": features.batch_size}
    if spec.dataset == "npz":
        reference = npz_reference_stats(spec.path, num_features=features.num_features, **common)
        name = f"{Path(spec.path).name} (sha1 {reference.key['data_sha1'][:12]})"
    else:
        reference = reference_stats(data_root, dataset=spec.dataset, split=spec.ref_split,
                                    num_samples=spec.ref_samples, **common)
        name = f"{spec.dataset}-{spec.ref_split}"
    if 0 < reference.features.shape[0] <= spec.pr_k:
        raise ValueError(f"the reference has {reference.features.shape[0]} images; precision/recall with "
                         f"metrics.pr_k={spec.pr_k} needs more than {spec.pr_k}")
    info = {"reference": name,
            "reference_samples": (int(reference.num_samples) if reference.num_samples is not None
                                  else "precomputed statistics (mu, sigma of the file)"),
            "reference_feature_samples": int(reference.features.shape[0])}
    if reference.features.shape[0] == 0:
        info["kid_precision_recall"] = f"unavailable: {Path(spec.path).name} holds statistics only (no arr_0 images)"
    return reference, info


def prepare_scoring(spec: ScoringSpec | None, data_root: str | Path, *,
                    download: bool = False) -> tuple[Scoring | None, str]:
    """Build the scoring pieces, computing (once, then cached) the reference statistics.

    Returns ``(scoring, "")``, or ``(None, reason)`` when the CIFAR-10 data is missing. A
    bad reference ``.npz`` raises a one-line ``ValueError``.
    """
    if spec is None:
        return None, "metrics=none: scoring switched off"
    _check_spec(spec)
    if download and spec.dataset == "cifar10":
        CIFAR10DataModule(root=data_root, download=True).prepare_data()
    head, is_info = _inception_head(spec)
    features = InceptionNet(head=head, precision=spec.precision)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the train split is 50 000 images
    features.batch_size, batch_info = _inception_batch(spec, features, device)
    try:
        reference, ref_info = _reference(spec, data_root, features, device if device.type == "cuda" else None)
    except FileNotFoundError as err:
        return None, f"not scored: {err}"
    info = {"inception": features.tag, **ref_info, "kid_pr_samples": spec.max_features, "inception_score": is_info,
            "inception_batch_size": features.batch_size, "inception_batch_choice": batch_info["chosen"],
            "sfid": "reported" if reference.mu_s is not None else "unavailable: the reference has no spatial "
                                                                  "statistics (mu_s, sigma_s)",
            **{k: v for k, v in asdict(spec).items() if k in ("pr_k", "kid_subsets", "kid_subset_size", "kid_bootstrap",
                                                                 "fid_inf_bootstrap")}}
    return Scoring(features, _base_features(spec, features), spec, reference, info), ""


def _inception_batch(spec: ScoringSpec, features: nn.Module, device: torch.device) -> tuple[int, dict]:
    """``metrics.batch_size`` resolved on ``device`` (:func:`bigroc.batch_size.resolve`); a probe
    runs the network on ``device``, then it goes back to the CPU."""
    from bigroc import batch_size
    from bigroc.metrics.reference import default_cache_dir

    requested = batch_size.checked(spec.batch_size, "metrics.batch_size")
    try:
        return batch_size.resolve(requested, "inception", device, features.head_tag + " " + features.tag,
                                  lambda: batch_size.inception_pass(features.to(device), device),
                                  default_cache_dir(spec.cache_dir))
    finally:
        features.to("cpu")


def _inception_head(spec: ScoringSpec):
    """(the head's weights or None, what metrics.json says about IS)."""
    if not spec.inception_score:
        return None, "unavailable: metrics.inception_score=false"
    path = find_head_file(spec.inception_weights, download=spec.inception_download)
    if path is None:
        return None, f"unavailable: the Inception head's weights were not found; {HOW_TO_GET_HEAD}"
    return read_head(path, checked=spec.inception_weights is None), f"reported (head: {path.name})"


def _base_features(spec: ScoringSpec, features: nn.Module) -> nn.Module:
    if not spec.cache_base_features:
        return features
    tag = f"{features.tag}, {features.head_tag}"  # the cached rows hold the head's logits too
    return FeatureCache(features, default_cache_dir(spec.cache_dir) / "features", tag=tag)
