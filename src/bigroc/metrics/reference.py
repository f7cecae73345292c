"""Reference (real-data) statistics for the scores: computed once, cached on disk.

FID needs the reference mean and covariance of pool3 features, sFID those of the spatial
``mixed_6/conv`` features; KID and precision/recall need reference pool3 features themselves
(the first ``max_features``). One pass over the split gives all: running float64 sums for
the moments, the first rows kept verbatim.

This module holds the built-in CIFAR-10 reference (:func:`reference_stats`) and the cache;
:mod:`bigroc.metrics.reference_npz` reads a reference batch the user brings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from bigroc.progress import Progress, print_line, silent
from bigroc.storage import atomic_write
from bigroc.metrics.features import InceptionNet, network_tag
from bigroc.metrics.maths import moments_from_sums, psd_factor

CACHE_FORMAT = 2  # 2: spatial statistics (sFID) beside pool3's
DATASETS = ("cifar10",)


@dataclass
class ReferenceStats:
    """Reference statistics.

    ``mu`` float64 (D,), ``sigma`` float64 (D, D) of pool3 over ``num_samples`` images
    (``None``: statistics read from a file that does not say how many);
    ``features`` float32 (M, D): the first M <= max_features reference images' features
    (M = 0 where only statistics exist: FID and FID-inf, no KID or precision/recall);
    ``key``: what was measured (dataset, split, sample count, network, data digest, ...);
    ``mu_s``, ``sigma_s``: the spatial features' statistics for sFID (None: no sFID).
    """

    mu: Tensor
    sigma: Tensor
    features: Tensor
    num_samples: int | None
    key: dict = field(default_factory=dict)
    mu_s: Tensor | None = None
    sigma_s: Tensor | None = None
    _factors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def sigma_factor(self, spatial: bool = False) -> Tensor:
        """F with F F^T = ``sigma`` (or ``sigma_s``), computed once (FID's and sFID's reference side)."""
        if spatial not in self._factors:
            self._factors[spatial] = psd_factor(self.sigma_s if spatial else self.sigma)
        return self._factors[spatial]

    @classmethod
    def from_features(cls, features: Tensor, max_features: int = 10000, key: dict | None = None,
                      spatial: Tensor | None = None) -> ReferenceStats:
        """Statistics of in-memory feature matrices (N, D) (and spatial (N, S)), e.g. for tests."""
        mu, sigma = _moments(features)
        mu_s, sigma_s = _moments(spatial) if spatial is not None else (None, None)
        return cls(mu, sigma, features[:max_features].float().clone(), features.shape[0], dict(key or {}),
                   mu_s, sigma_s)


def _moments(rows: Tensor) -> tuple[Tensor, Tensor]:
    f64 = rows.double()
    return moments_from_sums(f64.sum(0), f64.T @ f64, rows.shape[0])


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` when given, else ``$BIGROC_CACHE`` if set, else ``~/.cache/bigroc``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("BIGROC_CACHE") or Path.home() / ".cache" / "bigroc")


def _images(data_root: str | Path, dataset: str, split: str, num_samples: int | None) -> Tensor:
    if dataset not in DATASETS:
        raise ValueError(f"reference dataset must be one of {DATASETS}, got {dataset!r}")
    from bigroc.data import read_cifar10

    x, _ = read_cifar10(data_root, split)
    if num_samples is not None:
        if not 2 <= num_samples <= x.shape[0]:
            raise ValueError(f"num_samples must lie in 2..{x.shape[0]} for {dataset} {split}, got {num_samples}")
        x = x[:num_samples]
    return x


def _cache_file(cache_dir: Path, key: dict) -> Path:
    """A readable name plus a digest of the whole key (data, network version, ...)."""
    count = "all" if key["num_samples"] is None else str(key["num_samples"])
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"{key['dataset']}-{key['split']}-{count}-f{key['max_features']}-{digest}.pt"


def _load(path: Path, key: dict) -> ReferenceStats:
    hint = f"delete {path} and run again"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        stats = ReferenceStats(blob["mu"], blob["sigma"], blob["features"], int(blob["num_samples"]), blob["key"],
                               blob["mu_s"], blob["sigma_s"])
    except Exception as err:  # any unreadable or foreign file gets the same advice; details stay chained
        raise RuntimeError(f"reference cache {path} is unreadable or not a bigroc reference file; {hint}") from err
    if stats.key != key:
        raise RuntimeError(f"reference cache {path} holds {stats.key}, expected {key}; {hint}")
    return stats


def _save(stats: ReferenceStats, path: Path) -> None:
    """Write through a temporary file and a rename: readers see all of the file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"mu": stats.mu, "sigma": stats.sigma, "features": stats.features,
            "num_samples": stats.num_samples, "key": stats.key, "mu_s": stats.mu_s, "sigma_s": stats.sigma_s}
    atomic_write(path, lambda tmp: torch.save(blob, tmp))


class _Sums:
    """Running float64 sums of rows and of their outer products (mean and covariance)."""

    def __init__(self) -> None:
        self.sum: Tensor | None = None
        self.outer: Tensor | None = None

    def add(self, rows: Tensor) -> None:
        f64 = rows.double()
        self.sum = f64.sum(0) if self.sum is None else self.sum + f64.sum(0)
        self.outer = f64.T @ f64 if self.outer is None else self.outer + f64.T @ f64


def _stream_stats(chunks: Iterable[Tensor], total: int, extractor: nn.Module, max_features: int,
                  device: torch.device, label: str, progress: bool) -> ReferenceStats:
    """One pass over uint8 NCHW ``chunks`` (``total`` images): float64 running sums for the
    moments of pool3 (and of the spatial features, where the extractor gives them), the
    first ``max_features`` pool3 rows kept."""
    layout = getattr(extractor, "layout", None)  # an InceptionNet; else pool3 rows alone
    pool3, spatial = _Sums(), _Sums()
    kept: list[Tensor] = []
    n_kept = 0
    write = print_line if progress else silent
    with Progress(f"reference statistics ({label})", total, write=write) as bar:
        for chunk in chunks:
            rows = extractor(chunk.to(device)).detach()
            f, s = layout.split(rows)[:2] if layout is not None else (rows, None)
            pool3.add(f)
            if s is not None:
                spatial.add(s)
            if n_kept < max_features:
                kept.append(f[: max_features - n_kept].float().cpu())
                n_kept += kept[-1].shape[0]
            bar.update(chunk.shape[0])
    mu, sigma = moments_from_sums(pool3.sum, pool3.outer, total)
    mu_s, sigma_s = (None, None) if spatial.sum is None else moments_from_sums(spatial.sum, spatial.outer, total)
    return ReferenceStats(mu.cpu(), sigma.cpu(), torch.cat(kept), total,
                          mu_s=None if mu_s is None else mu_s.cpu(), sigma_s=None if sigma_s is None else sigma_s.cpu())


def cached_stats(key: dict, chunks: Callable[[], Iterable[Tensor]], total: int, *, cache_dir: str | Path | None,
            extractor: nn.Module | None, device: str | torch.device | None, label: str,
            progress: bool) -> ReferenceStats:
    """The statistics under ``key``: read from the cache, else computed from ``chunks()``
    (uint8 NCHW batches, ``total`` images) and cached atomically."""
    path = _cache_file(default_cache_dir(cache_dir), key)
    if path.exists():
        return _load(path, key)
    if device is None and extractor is not None:
        device = next((p.device for p in extractor.parameters()), "cpu")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if extractor is None:
        extractor = InceptionNet(precision=key["precision"])
    stats = _stream_stats(chunks(), total, extractor, key["max_features"], device, label, progress)
    stats.key = key
    _save(stats, path)
    return stats


def reference_stats(
    data_root: str | Path,
    dataset: str = "cifar10",
    split: str = "train",
    num_samples: int | None = None,
    precision: str = "32",
    cache_dir: str | Path | None = None,
    max_features: int = 10000,
    batch_size: int = 100,
    progress: bool = True,
    extractor: nn.Module | None = None,
    device: str | torch.device | None = None,
) -> ReferenceStats:
    """Reference statistics of ``dataset``/``split`` (the first ``num_samples`` images, or all).

    Loaded from ``cache_dir`` (default :func:`default_cache_dir`) when a file with the same
    key exists; otherwise computed with ``extractor`` (default: :class:`InceptionNet` at
    ``precision``, run on ``device``; default: the given extractor's device, else CUDA if
    available) and cached atomically (temporary file, then rename). The key includes a SHA-1
    of the images and the network's weights and precision, so different data, networks or
    precisions never share a cache file; the key is stored inside too and checked on load.
    """
    x = _images(data_root, dataset, split, num_samples)
    digest = hashlib.sha1(x.numpy().tobytes()).hexdigest()
    key = {"format": CACHE_FORMAT, "dataset": dataset, "split": split, "num_samples": num_samples,
           "network": network_tag(precision), "precision": str(precision), "max_features": max_features,
           "data_sha1": digest}
    return cached_stats(key, lambda: x.split(batch_size), x.shape[0], cache_dir=cache_dir, extractor=extractor,
                   device=device, label=f"{dataset} {split}", progress=progress)

