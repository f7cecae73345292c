"""The images to boost, as batches of global sample indices.

A generator makes image ``i`` from ``(seed, i)`` alone (see ``bigroc.generators``), so
the data of a boosting run is just the index range ``0..N-1``: each process takes one
contiguous block of it (no duplicate, no missing sample, whatever the world size) and the
LightningModule generates its images on the device. Concatenating the blocks in rank
order gives back the order of a single-process run, which keeps multi-process results
equal to single-process ones.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader


def shard_range(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous block [start, stop) of ``range(num_samples)`` that ``rank`` owns."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    return num_samples * rank // world_size, num_samples * (rank + 1) // world_size


def index_batches(start: int, stop: int, batch_size: int) -> list[torch.Tensor]:
    """``range(start, stop)`` cut into int64 batches of ``batch_size`` (the last may be short)."""
    return [torch.arange(i, min(i + batch_size, stop)) for i in range(start, stop, batch_size)]


class GeneratedDataModule(L.LightningDataModule):
    """Index batches for the test loop of :class:`bigroc.lit.Boost`.

    Args:
        num_samples: images to boost and score (indices ``0..num_samples-1``).
        batch_size: images per step and per process.

    Run the trainer with ``use_distributed_sampler=False``: this module shards itself.
    """

    def __init__(self, num_samples: int, batch_size: int = 64) -> None:
        super().__init__()
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def test_dataloader(self) -> DataLoader:
        start, stop = shard_range(self.num_samples, *self._rank_world())
        # batch_size=None: each item already is a batch of indices.
        return DataLoader(index_batches(start, stop, self.batch_size), batch_size=None)
