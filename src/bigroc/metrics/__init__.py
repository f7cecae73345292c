"""Scores of generated images against real data: FID, sFID, KID, improved precision/recall, IS.

Chain: uint8 images -> Inception features (``features``) -> pure maths on feature
matrices (``maths``) -> reference statistics cached on disk (``reference``) -> a
torchmetrics ``Metric`` that accumulates one stage's features, DDP-exact (``scores``).
References: CIFAR-10 built in (``reference``), or a batch the user brings (``reference_npz``).
"""

from bigroc.metrics.feature_cache import FeatureCache
from bigroc.metrics.features import FeatureLayout, InceptionFeatures, InceptionNet
from bigroc.metrics.inception_weights import HOW_TO_GET_HEAD, find_head_file, read_head
from bigroc.metrics.maths import frechet_distance, kid, precision_recall
from bigroc.metrics.reference import ReferenceStats, default_cache_dir, reference_stats
from bigroc.metrics.reference_npz import npz_reference_stats
from bigroc.metrics.scores import GenerativeScores, fid_inf_intervals, kid_intervals

__all__ = [
    "HOW_TO_GET_HEAD",
    "FeatureCache",
    "FeatureLayout",
    "GenerativeScores",
    "fid_inf_intervals",
    "kid_intervals",
    "InceptionFeatures",
    "InceptionNet",
    "ReferenceStats",
    "default_cache_dir",
    "find_head_file",
    "frechet_distance",
    "kid",
    "npz_reference_stats",
    "precision_recall",
    "read_head",
    "reference_stats",
]
