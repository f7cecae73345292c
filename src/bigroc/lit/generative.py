"""What every generator-training module shares: EMA weights, x-flips, a fixed-latent sample
grid per epoch, throughput, and the export that the boost pipeline's generator configs read.

The grid shows ``sampler().generate(arange(grid_size), grid_seed)``: the very images that
``run_boost.py generator=NAME generator.checkpoint=<export>`` starts from for indices
``0..grid_size-1`` under that seed (labels ``index % num_classes`` for conditional models).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from bigroc.generators import Generator
from bigroc.data.augment import hflip
from bigroc.lit.ema import ema_decay_at, ema_update
from bigroc.lit.throughput import ImagesPerSecond
from bigroc.storage import quantize

GRID_DIR = "samples"
GRID_KEY = "samples/grid"
EXPORT_NAME = "generator.safetensors"


class GenerativeTraining(L.LightningModule):
    """Base of :class:`VAETraining` and :class:`GANTraining`.

    Subclasses build ``self.net`` (the trained generator network) and call
    :meth:`_init_common`; they implement :meth:`sampler` (a :class:`Generator` over the raw
    or EMA weights, whose ``generate`` runs in eval mode) and :meth:`export_info` (family
    name, config keys, state dict).
    """

    net: nn.Module
    net_ema: nn.Module | None

    def _init_common(self, ema_decay: float, channels_last: bool, grid_size: int) -> None:
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1) (0 turns EMA off), got {ema_decay}")
        if grid_size < 0:
            raise ValueError(f"grid_size must be >= 0 (0 turns the grid off), got {grid_size}")
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.net_ema = copy.deepcopy(self.net).requires_grad_(False) if ema_decay > 0 else None
        self.ema_updates = 0  # EMA updates so far (checkpointed: the warm-up depends on it)
        self.batches_done = 0  # training batches so far (checkpointed)
        self.images_seen = 0  # real training images consumed by this process's fit (all ranks)
        self._rate = ImagesPerSecond()

    def _prepare(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """A training batch as the network takes it: flipped (if ``flip``), channels-last
        (if ``channels_last``)."""
        if self.hparams.flip:
            x = hflip(x, g)
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def _update_ema(self) -> None:
        if self.net_ema is None:
            return
        hp = self.hparams
        ema_update(self.net_ema, self.net, ema_decay_at(self.ema_updates, hp.ema_decay, hp.ema_warmup))
        self.ema_updates += 1

    def _step_generator(self, device: torch.device) -> torch.Generator:
        """Randomness of one training step (flips, latents, noise): a function of the seed, the
        step and the rank (each DDP process draws its own latents), so a resumed run draws
        what the uninterrupted one drew."""
        key = self.hparams.seed * 100_003 + self.global_step + 1_000_000_007 * self.global_rank
        return torch.Generator(device=device).manual_seed(key)

    def _count_batch(self, batch: int) -> None:
        """Count a training batch of ``batch`` real images and log images/s."""
        self.batches_done += 1
        self.images_seen += batch * self.trainer.world_size
        self._rate.step(self, batch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["generative_counters"] = {"ema_updates": self.ema_updates, "batches_done": self.batches_done}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("generative_counters", {})
        self.ema_updates = int(counters.get("ema_updates", 0))
        self.batches_done = int(counters.get("batches_done", 0))

    def recipe(self) -> dict[str, Any]:
        """The training settings an export records (the hyperparameters, plus what a
        subclass adds about networks that are not exported)."""
        return dict(self.hparams)

    # -- what subclasses provide ------------------------------------------------------
    def sampler(self, ema: bool = True) -> Generator:
        """The generator the boost pipeline would build: EMA weights when kept and ``ema``."""
        raise NotImplementedError

    def export_info(self) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
        """(family name of ``build_generator``, its config keys, the state dict it loads)."""
        raise NotImplementedError

    # -- the per-epoch grid -----------------------------------------------------------
    def grid(self) -> np.ndarray:
        """The exported generator's images ``0..grid_size-1`` under ``grid_seed``, tiled
        (a column per class for conditional models): uint8 (rows, cols, 3)."""
        gen = self.sampler()
        x, _ = gen.generate(torch.arange(self.hparams.grid_size), seed=self.hparams.grid_seed)
        cols = gen.num_classes if gen.conditional else math.ceil(math.sqrt(self.hparams.grid_size))
        from bigroc.viz import tile

        return tile(quantize(x).cpu(), cols)

    def on_train_epoch_end(self) -> None:
        self._rate.reset()
        if not self.trainer.is_global_zero or self.hparams.grid_size == 0:
            return
        from bigroc.viz import save_png

        out = Path(self.trainer.default_root_dir) / GRID_DIR
        out.mkdir(parents=True, exist_ok=True)
        path = save_png(out / f"epoch{self.current_epoch:04d}_step{self.global_step:07d}.png", self.grid())
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # W&B
                logger.log_image(key=GRID_KEY, images=[str(path)], step=self.global_step,
                                 caption=[f"epoch {self.current_epoch}"])
