"""Progress of the Lightning loops under the run's own names: a rich bar on a terminal, plain
lines (:class:`bigroc.progress.Progress`) when standard output is a file or a pipe."""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import Callback, RichProgressBar

from bigroc.progress import Progress


class StageProgressBar(RichProgressBar):
    """Rich progress (batches done, elapsed and remaining time) under the run's own label
    (Lightning's says "Testing" for any test loop)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    @property
    def test_description(self) -> str:
        return self.label


def _images_in(batch: Any) -> int | None:
    """Images in a batch: a tensor's first dimension, or its first member's (images, labels)."""
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    return len(first) if hasattr(first, "shape") and len(first.shape) else None


class LineProgress(Callback):
    """Plain progress lines for the training epochs, validation and test loops (rank 0 only).

    A plain ``Callback``, not a ``ProgressBar``: the trainer runs with
    ``enable_progress_bar=False`` beside it (Lightning refuses a bar then, and adds its own
    otherwise). ``label`` names the test loop (e.g. "boosting and scoring").
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.progress: Progress | None = None
        self._outer: Progress | None = None  # the training epoch's, while validation runs

    def _start(self, trainer: Any, stage: str, total: Any) -> None:
        total = sum(total) if isinstance(total, (list, tuple)) else total
        known = total != float("inf")  # inf: an iterable of unknown length
        self.progress = Progress(stage, int(total) if known else None, unit="batches").start() \
            if trainer.is_global_zero and not trainer.sanity_checking else None

    def _update(self, batch: Any) -> None:
        if self.progress is not None:
            self.progress.update(1, images=_images_in(batch))

    def _close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.progress = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self._start(trainer, f"training epoch {trainer.current_epoch + 1}{epochs}", trainer.num_training_batches)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._update(batch)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._outer, self.progress = self.progress, None  # validation runs inside a training epoch
        self._start(trainer, f"validation (epoch {trainer.current_epoch + 1})", trainer.num_val_batches)

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._update(batch)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()
        self.progress = self._outer

    def on_test_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._start(trainer, self.label, trainer.num_test_batches)

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._update(batch)

    def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()


def progress_callbacks(label: str, enabled: bool) -> tuple[list[Callback], bool]:
    """``(callbacks, enable_progress_bar)`` for a trainer: the rich bar on a terminal, plain
    lines otherwise, nothing at all when not ``enabled`` (``trainer.enable_progress_bar``;
    the other stages' lines follow :func:`bigroc.progress.set_enabled`)."""
    if not enabled:
        return [], False
    if sys.stdout.isatty():
        return [StageProgressBar(label)], True
    return [LineProgress(label)], False
