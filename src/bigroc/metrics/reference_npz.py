"""A reference batch the user brings as an ``.npz``, for scores at scales with no built-in
reference (ImageNet 64/128/256: ADM's ``VIRTUAL_imagenet*_labeled.npz``).

Such a file holds pool3 statistics ``mu``/``sigma`` (ADM's: over the whole dataset, from
TF's Inception; ours come from the TorchScript port of the same network, whose features
match, so FIDs are comparable up to that port), and/or reference images ``arr_0`` (ADM's:
10 000 images, for precision/recall). Features of ``arr_0`` are computed and cached as the
CIFAR-10 reference's are (:func:`bigroc.metrics.reference.cached_stats`).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor, nn

from bigroc.io import npz_header, read_npz_array
from bigroc.metrics.features import describe_backend, resolve_backend
from bigroc.metrics.reference import CACHE_FORMAT, ReferenceStats, cached_stats

NPZ_LAYOUT = ("metrics.path takes a reference batch .npz: mu (D,) and sigma (D, D) pool3 statistics "
              "(ADM's reference batches), and/or arr_0 uint8 (N, H, W, 3) reference images")


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


def read_reference_npz(path: str | Path,
                       num_features: int = 2048) -> tuple[Tensor | None, Tensor | None, np.ndarray | None]:
    """``(mu, sigma, images)`` of a reference ``.npz``, each checked; absent parts are None.

    ``mu`` float64 (D,) and ``sigma`` float64 (D, D) come together or not at all;
    ``images`` is ``arr_0``, uint8 (N, H, W, 3) with N >= 2, memory-mapped where stored
    uncompressed. ADM's spatial statistics (``mu_s``, ``sigma_s``) are ignored. Raises a
    one-line ``ValueError`` naming the file and what is wrong.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"reference {path} does not exist; set metrics.path to a reference batch .npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise _bad_npz(path, f"not a readable .npz file ({type(err).__name__})") from None
    missing = {"mu", "sigma"} - keys
    if len(missing) == 1:
        raise _bad_npz(path, f"has {({'mu', 'sigma'} - missing).pop()} but no {missing.pop()}")
    if "mu" not in keys and "arr_0" not in keys:
        raise _bad_npz(path, f"holds neither mu/sigma nor arr_0 (keys: {', '.join(sorted(keys)) or 'none'})")
    mu = sigma = images = None
    if "mu" in keys:
        expected = {"mu": (num_features,), "sigma": (num_features, num_features)}
        for name, shape in expected.items():
            got, dtype = npz_header(path, name)
            if dtype.kind != "f" or got != shape:
                raise _bad_npz(path, f"{name} is {dtype} {got}, expected float {shape}")
        mu, sigma = (torch.from_numpy(np.array(read_npz_array(path, k), dtype=np.float64)) for k in ("mu", "sigma"))
        if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
            raise _bad_npz(path, "mu or sigma holds NaN or infinite values")
    if "arr_0" in keys:
        shape, dtype = npz_header(path, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or shape[0] < 2:
            raise _bad_npz(path, f"arr_0 is {dtype} {shape}, expected uint8 (N, H, W, 3) with N >= 2 (NHWC)")
        images = read_npz_array(path, "arr_0")
    return mu, sigma, images


def npz_reference_stats(
    path: str | Path,
    *,
    backend: str = "fid_helper",
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
      same); ``arr_0``, where present too, gives only the KID / precision-recall features,
      so only its first ``max_features`` images are run through the network.
    - ``arr_0`` only: every statistic is computed from the images.
    - statistics only: no features (FID only).

    Image features are computed like the CIFAR-10 reference's (any image size: the network
    resizes to 299x299 as TF does) and cached under a key holding the file's SHA-1.
    """
    path = Path(path).expanduser()
    mu, sigma, images = read_reference_npz(path, num_features)
    backend = resolve_backend(backend)
    key = {"format": CACHE_FORMAT, "dataset": "npz", "split": _safe_stem(path), "backend": backend,
           "network": describe_backend(backend), "max_features": max_features, "data_sha1": _file_sha1(path)}
    if images is None:
        return ReferenceStats(mu, sigma, torch.zeros(0, num_features), None, key)
    n = images.shape[0] if mu is None else min(images.shape[0], max_features)
    key["num_samples"] = n

    def chunks() -> Iterable[Tensor]:
        for lo in range(0, n, batch_size):
            yield torch.from_numpy(np.array(images[lo: min(lo + batch_size, n)])).permute(0, 3, 1, 2)

    stats = cached_stats(key, chunks, n, cache_dir=cache_dir, extractor=extractor, device=device,
                         label=path.name, progress=progress)
    if mu is None:
        return stats
    return ReferenceStats(mu, sigma, stats.features, None, stats.key)
