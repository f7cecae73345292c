"""Training images per second, logged the same way by every training module."""

from __future__ import annotations

import time

import lightning as L

from bigroc import keys


class ImagesPerSecond:
    """Logs ``train/images_per_sec``: the images of a step (all processes) over the time since
    the previous step. :meth:`reset` after an interruption (validation, an epoch's end)."""

    def __init__(self) -> None:
        self._tick: float | None = None

    def reset(self) -> None:
        self._tick = None

    def step(self, module: L.LightningModule, batch: int) -> None:
        now = time.perf_counter()
        if self._tick is not None:
            module.log(keys.TRAIN_IMAGES_PER_SEC, batch * module.trainer.world_size / (now - self._tick))
        self._tick = now
