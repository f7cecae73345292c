"""Training bigroc's convolutional VAE on [0, 1] images: Adam on the negative ELBO.

Each step: optional x-flips, ``encode`` -> ``reparameterize`` (noise drawn from the step's
seeded generator, so resuming is exact) -> ``decode`` -> :func:`bigroc.generators.vae.vae_loss`.
Validation reports the same loss on held-out images (fixed noise per batch). The export is
the VAE's state dict (EMA weights when ``ema_decay > 0``), which ``generator=vae`` loads.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from bigroc import keys
from bigroc.generators import Generator
from bigroc.generators.vae import VAE, VAEGenerator, vae_loss
from bigroc.lit.generative import GenerativeTraining

TRAIN_RECON = "train/recon"
TRAIN_KL = "train/kl"
VAL_LOSS = "val/loss"
VAL_RECON = "val/recon"
VAL_KL = "val/kl"
SCHEDULES = ("constant", "cosine")


class VAETraining(GenerativeTraining):
    """Maximum-ELBO training of ``vae``.

    Args:
        vae: the model (trained in place); images in [0, 1], (B, 3, 32, 32).
        lr, betas, weight_decay: Adam.
        schedule: ``constant`` or ``cosine`` (lr to 1% of ``lr`` over the run, per step).
        beta: KL weight (1: the ELBO).
        recon: ``bce`` or ``mse`` likelihood (see ``vae_loss``).
        ema_decay: EMA of the weights (0: off); the EMA copy is sampled and exported.
        ema_warmup: ramp the decay as ``(1 + n) / (10 + n)`` up to ``ema_decay``.
        flip: mirror half of each batch left-right (seeded by the step).
        channels_last: channels-last weights and batches (faster convolutions on CPUs).
        grid_size, grid_seed: the per-epoch sample grid (0 turns it off).
        seed: the training randomness (flips, posterior noise) per step.
    """

    def __init__(
        self,
        vae: VAE,
        *,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        schedule: str = "constant",
        beta: float = 1.0,
        recon: str = "bce",
        ema_decay: float = 0.0,
        ema_warmup: bool = True,
        flip: bool = True,
        channels_last: bool = False,
        grid_size: int = 64,
        grid_seed: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if recon not in ("bce", "mse"):
            raise ValueError(f"recon must be 'bce' or 'mse', got {recon!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if beta < 0:
            raise ValueError(f"beta (the KL weight) must be >= 0, got {beta}")
        self.save_hyperparameters(ignore=["vae"])
        self.net = vae
        self._init_common(ema_decay, channels_last, grid_size)

    def _loss(self, vae: VAE, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        mu, logvar = vae.encode(x)
        x_hat = vae.decode(VAE.reparameterize(mu, logvar, generator=g))
        return vae_loss(x_hat, x, mu, logvar, beta=self.hparams.beta, recon=self.hparams.recon)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, _ = batch
        g = self._step_generator(x.device)
        x = self._prepare(x, g)
        loss, rec, kl = self._loss(self.net, x, g)
        self.log(keys.TRAIN_LOSS, loss, prog_bar=True)
        self.log(TRAIN_RECON, rec)
        self.log(TRAIN_KL, kl, prog_bar=True)
        self.log(keys.TRAIN_LR, self.optimizers().param_groups[0]["lr"])
        self._count_batch(len(x))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self._update_ema()  # here, not in on_train_batch_end: checkpoint callbacks run before that

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, _ = batch
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        g = torch.Generator(device=x.device).manual_seed(batch_idx)
        loss, rec, kl = self._loss(self.net_ema if self.net_ema is not None else self.net, x, g)
        for key, value in ((VAL_LOSS, loss), (VAL_RECON, rec), (VAL_KL, kl)):
            self.log(key, value, batch_size=len(x), sync_dist=True, prog_bar=key == VAL_LOSS)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.net.parameters(), lr=hp.lr, betas=tuple(map(float, hp.betas)),
                               weight_decay=hp.weight_decay, foreach=True)
        if hp.schedule == "constant":
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=hp.lr * 0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def sampler(self, ema: bool = True) -> Generator:
        vae = self.net_ema if ema and self.net_ema is not None else self.net
        return VAEGenerator(vae).train(vae.training)  # generate() evaluates, then restores this mode

    def export_info(self) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
        vae = self.net_ema if self.net_ema is not None else self.net
        return "vae", {"latent_dim": vae.latent_dim, "ch": vae.ch}, vae.state_dict()
