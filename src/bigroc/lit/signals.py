"""Stopping promptly on SIGTERM (``kill``, ``timeout``, a scheduler's pre-emption), resumable.

Lightning notices SIGTERM but acts on it only between training batches, and never during
the last batch of an evaluation loop: a final test of one large batch ran on after the
signal. :class:`StopOnSigterm` closes both gaps.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from bigroc.entry import SIGTERM_EXIT as EXIT_STATUS, Terminated

log = logging.getLogger(__name__)


class StopOnSigterm(L.Callback):
    """While fitting: stop after the running training batch (or validation) and save
    ``checkpoint`` (resume with ``ckpt_path=`` it). Anywhere else (set-up, the final test):
    exit at once; the training's checkpoints are already on disk.

    The handler is installed when the callback is made, before the trainer starts, so
    Lightning's own SIGTERM handler runs first and then calls this one.
    """

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self._trainer: L.Trainer | None = None
        signal.signal(signal.SIGTERM, self._on_signal)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def _on_signal(self, signum: int, frame) -> None:
        if self._trainer is not None and self._trainer.state.fn == TrainerFn.FITTING:
            # Lightning raises SIGTERMException after this training batch (or the running
            # validation), and on_exception saves: no training step is lost.
            return
        raise Terminated  # the entry's wrapper exits with EXIT_STATUS

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.checkpoint)
            log.info("SIGTERM: saved %s after step %d; resume with ckpt_path=%s", self.checkpoint,
                     trainer.global_step, self.checkpoint)


__all__ = ["EXIT_STATUS", "SIGTERMException", "StopOnSigterm"]
