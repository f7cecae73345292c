"""A training loader that resumes mid-epoch exactly where a checkpoint left it.

Each epoch visits a permutation drawn from ``(seed, epoch)``, so the order is a function
of the run's seed alone; under DDP each rank takes every ``world_size``-th batch of it.
``state_dict``/``load_state_dict`` (which Lightning saves in its checkpoints) record the
epoch and how many batches were consumed, so a resumed run sees the very batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ResumableLoader:
    """Iterable of shuffled training batches with a resumable position.

    Not a ``DataLoader`` subclass on purpose: Lightning then leaves its sampling alone
    (it shards itself) while ``num_workers``/``pin_memory`` still go to the inner loader.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.epoch, self.consumed = 0, 0  # position of the epoch in progress
        self._next_epoch, self._skip = 0, 0

    def _batches_per_epoch(self) -> int:
        _, world = _rank_and_world()
        return len(self.dataset) // (self.batch_size * world)  # drop the last partial batch

    def __len__(self) -> int:
        return self._batches_per_epoch()

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        rank, world = _rank_and_world()
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=g).tolist()
        step = self.batch_size
        batches = [order[i : i + step] for i in range(0, len(order) - step + 1, step)]
        return batches[rank::world][: self._batches_per_epoch()]

    def __iter__(self) -> Iterator[Any]:
        self.epoch, self.consumed = self._next_epoch, self._skip
        self._next_epoch, self._skip = self.epoch + 1, 0
        batches = self._epoch_batches(self.epoch)[self.consumed :]
        inner = DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )
        for batch in inner:
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(
                f"checkpoint was trained with data seed {state['seed']}, this run has {self.seed}; "
                "resume with the same seed"
            )
        self._next_epoch, self._skip = state["epoch"], state["consumed"]
        if self._skip >= self._batches_per_epoch():  # saved at the end of an epoch
            self._next_epoch, self._skip = self._next_epoch + 1, 0
