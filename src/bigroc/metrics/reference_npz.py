"""A reference batch the user brings as an ``.npz``, for scores at scales with no built-in
reference (ImageNet 64/128/256: ADM's ``VIRTUAL_imagenet*_labeled.npz``).

Such a file holds pool3 statistics ``mu``/``sigma`` (ADM's: over the whole dataset, from
TF's Inception; ours come from a port of the same network, whose features match, so FIDs
are comparable up to that port), optionally the spatial statistics ``mu_s``/``sigma_s``
for sFID, and/or reference images ``arr_0`` (ADM's: 10 000 images, for precision/recall).
Features of ``arr_0`` are computed and cached as the CIFAR-10 reference's are
(:func:`bigroc.metrics.reference.cached_stats`).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor, nn

from bigroc.safe_load import regular_file
from bigroc.storage import npz_header, read_npz_array
from bigroc.metrics.features import SPATIAL, network_tag
from bigroc.metrics.reference import CACHE_FORMAT, ReferenceStats, cached_stats

NPZ_LAYOUT = ("metrics.path takes a reference batch .npz: mu (D,) and sigma (D, D) pool3 statistics "
              "(ADM's reference batches; mu_s/sigma_s spatial ones optional), and/or arr_0 uint8 (N, H, W, 3) "
              "reference images")


def _bad_npz(path: Path, what: str) -> ValueError:
    return ValueError(f"reference {path}: {what}; {NPZ_LAYOUT}")


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_stem(path: Path) -> str:
    """The file's stem with only characters safe in a cache file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem)


def _read_moments(path: Path, keys: set[str], names: tuple[str, str], dim: int) -> tuple[Tensor, Tensor] | None:
    """``(mean, covariance)`` float64 of ``names`` in the file, checked; None when absent."""
    present = [n for n in names if n in keys]
    if not present:
        return None
    if len(present) == 1:
        other = (set(names) - set(present)).pop()
        raise _bad_npz(path, f"has {present[0]} but no {other}")
    for name, shape in zip(names, ((dim,), (dim, dim))):
        got, dtype = npz_header(path, name)
        if dtype.kind != "f" or got != shape:
            raise _bad_npz(path, f"{name} is {dtype} {got}, expected float {shape}")
    mean, cov = (torch.from_numpy(np.array(read_npz_array(path, k), dtype=np.float64)) for k in names)
    if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
        raise _bad_npz(path, f"{names[0]} or {names[1]} holds NaN or infinite values")
    return mean, cov


def read_reference_npz(path: str | Path, num_features: int = 2048
                       ) -> tuple[Tensor | None, Tensor | None, np.ndarray | None, tuple[Tensor, Tensor] | None]:
    """``(mu, sigma, images, spatial)`` of a reference ``.npz``, each checked; absent parts are None.

    ``mu`` float64 (D,) and ``sigma`` float64 (D, D) come together or not at all, as do
    ADM's spatial ``mu_s`` (2023,) and ``sigma_s`` (2023, 2023) (``spatial``); ``images`` is
    ``arr_0``, uint8 (N, H, W, 3) with N >= 2, memory-mapped where stored uncompressed.
    Raises a one-line ``ValueError`` naming the file and what is wrong (a FIFO or a device
    included: refused without being opened).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"reference {path} does not exist; set metrics.path to a reference batch .npz")
    regular_file(path, "reference batch .npz (metrics.path)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise _bad_npz(path, f"not a readable .npz file ({type(err).__name__})") from None
    moments = _read_moments(path, keys, ("mu", "sigma"), num_features)
    spatial = _read_moments(path, keys, ("mu_s", "sigma_s"), SPATIAL)
    if moments is None and "arr_0" not in keys:
        raise _bad_npz(path, f"holds neither mu/sigma nor arr_0 (keys: {', '.join(sorted(keys)) or 'none'})")
    mu, sigma = moments if moments is not None else (None, None)
    images = None
    if "arr_0" in keys:
        shape, dtype = npz_header(path, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or shape[0] < 2:
            raise _bad_npz(path, f"arr_0 is {dtype} {shape}, expected uint8 (N, H, W, 3) with N >= 2 (NHWC)")
        images = read_npz_array(path, "arr_0")
    return mu, sigma, images, spatial


def npz_reference_stats(
    path: str | Path,
    *,
    precision: str = "32",
    cache_dir: str | Path | None = None,
    max_features: int = 10000,
    batch_size: int = 100,
    progress: bool = True,
    extractor: nn.Module | None = None,
    device: str | torch.device | None = None,
    num_features: int = 2048,
) -> ReferenceStats:
    """Reference statistics from a user's ``.npz`` (see :func:`read_reference_npz`).

    - ``mu`` and ``sigma`` present: FID uses them as they are (ADM's evaluator does the
      same), and sFID ``mu_s``/``sigma_s`` where present; ``arr_0``, where present too,
      gives only the KID / precision-recall features, so only its first ``max_features``
      images are run through the network.
    - ``arr_0`` only: every statistic is computed from the images.
    - statistics only: no features (FID and FID-inf only).

    Image features are computed like the CIFAR-10 reference's (any image size: the network
    resizes to 299x299 as TF does) and cached under a key holding the file's SHA-1.
    """
    path = Path(path).expanduser()
    mu, sigma, images, spatial = read_reference_npz(path, num_features)
    mu_s, sigma_s = spatial if spatial is not None else (None, None)
    key = {"format": CACHE_FORMAT, "dataset": "npz", "split": _safe_stem(path), "network": network_tag(precision),
           "precision": str(precision), "max_features": max_features, "data_sha1": _file_sha1(path)}
    if images is None:
        return ReferenceStats(mu, sigma, torch.zeros(0, num_features), None, key, mu_s, sigma_s)
    n = images.shape[0] if mu is None else min(images.shape[0], max_features)
    key["num_samples"] = n

    def chunks() -> Iterable[Tensor]:
        for lo in range(0, n, batch_size):
            yield torch.from_numpy(np.array(images[lo: min(lo + batch_size, n)])).permute(0, 3, 1, 2)

    stats = cached_stats(key, chunks, n, cache_dir=cache_dir, extractor=extractor, device=device,
                         label=path.name, progress=progress)
    if mu is None:
        return stats
    # The file's statistics win; computed spatial ones stand in only where it has none and
    # its images are all there is (n = every image).
    own_spatial = spatial is None and n == images.shape[0]
    return ReferenceStats(mu, sigma, stats.features, None, stats.key, *(
        (stats.mu_s, stats.sigma_s) if own_spatial else (mu_s, sigma_s)))
