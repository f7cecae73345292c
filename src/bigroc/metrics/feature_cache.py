"""Inception features of generated images kept on disk by content.

An eps sweep boosts the same base images in every job: their features are the same each
time, and on a CPU Inception is most of a run's cost. :class:`FeatureCache` stores the
features of each uint8 batch under the SHA-1 of (network tag, shape, bytes), so a later job
reads them back instead of running the network again. Equal bytes give equal features, so
the scores do not change.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from bigroc.storage import atomic_write


class FeatureCache(nn.Module):
    """``net(u8)``, looked up in (and written to) ``folder`` first.

    Args:
        net: the feature network, uint8 (N, 3, H, W) -> float (N, D).
        folder: where the ``<sha1>.pt`` files live (created when first needed).
        tag: what identifies ``net`` (backend, version, weights): part of every key.

    A file that cannot be read or does not fit the batch is computed again and replaced; a
    folder that cannot be written to gives one warning, and the features are still returned.
    """

    def __init__(self, net: nn.Module, folder: str | Path, tag: str) -> None:
        super().__init__()
        self.net = net
        self.layout = getattr(net, "layout", None)  # how its rows split (an InceptionNet's)
        self.folder = Path(folder)
        self.tag = tag
        self._warned = False

    def key(self, u8: Tensor) -> str:
        # The device type is part of the key: CPU and GPU kernels round differently.
        digest = hashlib.sha1(f"{self.tag}|{u8.device.type}|{tuple(u8.shape)}|{u8.dtype}|".encode())
        digest.update(u8.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def forward(self, u8: Tensor) -> Tensor:
        path = self.folder / f"{self.key(u8)}.pt"
        cached = _read(path, len(u8))
        if cached is not None:
            return cached.to(u8.device)
        features = self.net(u8)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: torch.save(features.detach().cpu(), tmp))
        except OSError as err:  # a read-only or full disk costs speed, never the run
            if not self._warned:
                warnings.warn(f"cannot cache features in {self.folder} ({err}); computing them every time",
                              stacklevel=2)
                self._warned = True
        return features


def _read(path: Path, rows: int) -> Tensor | None:
    if not path.is_file():
        return None
    try:
        features = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged file: compute again
        return None
    ok = isinstance(features, Tensor) and features.ndim == 2 and features.shape[0] == rows
    return features if ok else None
