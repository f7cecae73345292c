"""What every generator-training module shares: EMA weights, x-flips, a fixed-latent sample
grid per epoch, throughput, and the export that the boost pipeline's generator configs read.

The grid shows ``sampler().generate(arange(grid_size), grid_seed)``: the very images that
``run_boost.py generator=NAME generator.checkpoint=<export>`` starts from for indices
``0..grid_size-1`` under that seed (labels ``index % num_classes`` for conditional models).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch import nn

from bigroc import keys
from bigroc.generators import Generator
from bigroc.storage import atomic_write, quantize
from bigroc.provenance import command_line, machine

GRID_DIR = "samples"
GRID_KEY = "samples/grid"
EXPORT_NAME = "generator.safetensors"


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``p_ema <- decay * p_ema + (1 - decay) * p`` for every parameter; buffers (batch-norm
    statistics, spectral-norm vectors) are copied, as in StyleGAN2-ADA and BigGAN-PyTorch."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def ema_decay_at(updates: int, decay: float, warmup: bool) -> float:
    """Decay of the ``updates``-th EMA update (0-based): ``min(decay, (1 + n) / (10 + n))``
    with ``warmup`` (TensorFlow's ``num_updates`` rule, so short runs forget the random
    initialisation), else ``decay``."""
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay


def hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of (N, C, H, W) left-right with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


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
        self._tick: float | None = None

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
        now = time.perf_counter()
        if self._tick is not None:
            self.log(keys.TRAIN_IMAGES_PER_SEC, batch * self.trainer.world_size / (now - self._tick))
        self._tick = now

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
        self._tick = None
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


def export_generator(module: GenerativeTraining, data: Any, trainer: L.Trainer, *, out_dir: Path,
                     train_seconds: float) -> Path:
    """Write ``out_dir/generator.safetensors`` (EMA weights when kept) and ``generator.json``.

    The weights are the state dict ``build_generator(family, checkpoint=...)`` loads; the
    sidecar says how they were made (recipe, data fingerprint, steps, wall time, machine,
    command) and the boost-config overrides that load them. Both are written atomically.
    """
    from safetensors.torch import save_file

    family, settings, state = module.export_info()
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    path = Path(out_dir) / EXPORT_NAME
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": f"bigroc-{family}"}))
    images = module.images_seen
    batch_size = data.batch_size * trainer.world_size
    name, sha1 = getattr(data, "fingerprint", None) or ("unknown", "")
    overrides = " ".join(f"generator.{k}={v}" for k, v in settings.items())
    meta = {
        "format": f"bigroc-{family}",
        "generator": family,
        **settings,
        "boost_config": f"generator={family} generator.checkpoint={path.name} {overrides}",
        "weights": "ema" if module.net_ema is not None else "raw",
        "dataset": name,
        "dataset_sha1": sha1,
        "recipe": module.recipe(),
        "global_step": trainer.global_step,
        "batches": module.batches_done,
        "epochs": round(module.batches_done * batch_size / len(data.splits["train"]), 2),
        "batch_size": batch_size,
        "wall_time_s": round(train_seconds, 1),
        "train_images_per_sec": round(images / train_seconds, 1) if train_seconds > 0 and images else None,
        "machine": machine(),
        "command": command_line(),
    }
    text = json.dumps(meta, indent=2, default=lambda v: list(v) if isinstance(v, Sequence) else str(v))
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    return path
