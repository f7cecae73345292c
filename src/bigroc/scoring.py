"""What a boosting run scores with: the feature network, the reference set, the metrics.

``conf/metrics/*.yaml`` instantiates :class:`ScoringSpec`; :func:`prepare_scoring` turns it
into the pieces :class:`bigroc.lit.Boost` holds, or into one line saying why the run
cannot be scored (no reference data), in which case the run still boosts and saves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from bigroc import keys


@dataclass
class ScoringSpec:
    """How to score (the ``metrics`` config group).

    Attributes:
        dataset, ref_split, ref_samples: the reference set: CIFAR-10 ``train`` (the paper's)
            or ``test``, all of it (``ref_samples=None``) or its first ``ref_samples`` images.
        backend: Inception features: ``auto``, ``fid_helper`` or ``torch_fidelity``.
        cache_dir: where reference statistics are cached (default ``$BIGROC_CACHE`` or
            ``~/.cache/bigroc``).
        max_features: KID, precision/recall (and IS) use the first this many samples.
        inception_score: report IS where the standard Inception logits are available.
        is_weights: a local file of those weights, for torch-fidelity without internet.
    """

    dataset: str = "cifar10"
    ref_split: str = "train"
    ref_samples: int | None = None
    backend: str = "auto"
    cache_dir: str | None = None
    max_features: int = 10000
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    inception_score: bool = True
    is_weights: str | None = None


@dataclass
class Scoring:
    """The ready pieces: ``scores`` for :class:`bigroc.lit.Boost`, and what to record."""

    features: nn.Module
    logits_net: nn.Module | None
    spec: ScoringSpec
    reference: Any
    info: dict[str, Any]

    def new_scores(self) -> dict[str, nn.Module]:
        """Fresh base and boosted metric states (one pair per seed)."""
        from bigroc.metrics import GenerativeScores

        s = self.spec
        return {stage: GenerativeScores(self.reference, max_features=s.max_features,
                                        kid_subsets=s.kid_subsets, kid_subset_size=s.kid_subset_size,
                                        pr_k=s.pr_k, with_is=self.logits_net is not None)
                for stage in (keys.BASE, keys.BOOSTED)}


def prepare_scoring(spec: ScoringSpec | None, data_root: str | Path, *,
                    download: bool = False) -> tuple[Scoring | None, str]:
    """Build the scoring pieces, computing (once, then cached) the reference statistics.

    Returns ``(scoring, "")``, or ``(None, reason)`` when the reference data is missing.
    """
    if spec is None:
        return None, "metrics=none: scoring switched off"
    from bigroc.metrics import build_feature_extractor, inception_logits, reference_stats

    if spec.dataset != "cifar10":
        raise ValueError(f"metrics.dataset must be cifar10 (the built-in reference), got {spec.dataset!r}")
    if download:
        from bigroc.data.cifar10 import CIFAR10DataModule

        CIFAR10DataModule(root=data_root, download=True).prepare_data()
    import torch

    features, backend = build_feature_extractor(spec.backend)
    try:  # on a GPU where there is one: the train split is 50 000 images
        reference = reference_stats(data_root, dataset=spec.dataset, split=spec.ref_split,
                                    num_samples=spec.ref_samples, backend=backend,
                                    cache_dir=spec.cache_dir, max_features=spec.max_features,
                                    extractor=features, device="cuda" if torch.cuda.is_available() else None)
    except FileNotFoundError as err:
        return None, f"not scored: {err}"
    logits_net, why_no_is = (inception_logits(spec.is_weights) if spec.inception_score
                             else (None, "metrics.inception_score=false"))
    info = {"backend": backend, "reference": f"{spec.dataset}-{spec.ref_split}",
            "reference_samples": int(reference.num_samples), "kid_pr_samples": spec.max_features,
            "inception_score": "reported" if logits_net is not None else f"unavailable: {why_no_is}",
            **{k: v for k, v in asdict(spec).items() if k in ("pr_k", "kid_subsets", "kid_subset_size")}}
    return Scoring(features, logits_net, spec, reference, info), ""
