"""GAN training for torch-mimicry-layout generators: SNGAN (unconditional) and cGAN-PD
(class-conditional batch norm in G, projection discriminator).

The generator is :class:`bigroc.generators.mimicry.MimicryGenerator32`, so the export loads
with ``generator=sngan`` / ``generator=cgan_pd``. The discriminator is mimicry's layout
(:class:`bigroc.models.discriminators.SNResNetDiscriminator32`).

Each training batch is one discriminator step; every ``n_dis``-th batch also takes one
generator step and updates the generator's EMA, which is what mimicry's trainer does
(``n_dis`` D steps, each on a fresh real batch, then one G step). Lightning counts every
optimizer step in ``global_step``, so ``trainer.max_steps`` counts D and G steps together,
and a batch with a G step advances it by 2: ``checkpoint.every_n_train_steps`` is met
reliably when it is a multiple of ``n_dis + 1`` (the steps of one D/G cycle). Under DDP
each step uses only part of the networks for each backward pass: run it with
``trainer.strategy=ddp_find_unused_parameters_true``.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from bigroc.generators import Generator
from bigroc.generators.mimicry import MimicryGenerator32
from bigroc.lit.generative import GenerativeTraining
from bigroc.models.discriminators import SNResNetDiscriminator32

LOSSES = ("hinge", "ns")
SCHEDULES = ("constant", "linear")
D_LOSS, G_LOSS = "train/d_loss", "train/g_loss"
D_REAL, D_FAKE = "train/d_real", "train/d_fake"


def d_loss_fn(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: ``hinge`` (SNGAN, cGAN-PD) or ``ns`` (the original GAN's)."""
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_loss_fn(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss: ``hinge``: -D(G(z)); ``ns``: the non-saturating -log sigmoid D(G(z))."""
    return -d_fake.mean() if kind == "hinge" else F.softplus(-d_fake).mean()


class GANTraining(GenerativeTraining):
    """Adversarial training of a mimicry-layout generator against a spectral-norm critic.

    Args:
        generator: trained in place; ``conditional`` selects cGAN-PD.
        discriminator: conditional (``num_classes > 0``) exactly when the generator is.
        lr_g, lr_d, betas: Adam (mimicry's SNGAN / cGAN-PD: 2e-4, 2e-4, (0.0, 0.9)).
        schedule: ``constant`` or ``linear`` (both lrs to 0 over the run, mimicry's choice).
        n_dis: discriminator steps per generator step.
        loss: ``hinge`` or ``ns`` (non-saturating).
        ema_decay, ema_warmup: EMA of the generator (0: off); the EMA copy is sampled and exported.
        flip, channels_last, grid_size, grid_seed, seed: as in :class:`VAETraining`.
    """

    automatic_optimization = False

    def __init__(
        self,
        generator: MimicryGenerator32,
        discriminator: SNResNetDiscriminator32,
        *,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: Sequence[float] = (0.0, 0.9),
        schedule: str = "constant",
        n_dis: int = 5,
        loss: str = "hinge",
        ema_decay: float = 0.9999,
        ema_warmup: bool = True,
        flip: bool = True,
        channels_last: bool = False,
        grid_size: int = 64,
        grid_seed: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if n_dis < 1:
            raise ValueError(f"n_dis (discriminator steps per generator step) must be >= 1, got {n_dis}")
        if generator.conditional != (discriminator.num_classes > 0) or (
                generator.conditional and generator.num_classes != discriminator.num_classes):
            raise ValueError(
                f"generator (conditional={generator.conditional}, num_classes={generator.num_classes}) and "
                f"discriminator (num_classes={discriminator.num_classes}) disagree: a conditional generator "
                "needs a projection discriminator with the same num_classes, an unconditional one num_classes=0"
            )
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.net, self.discriminator = generator, discriminator
        if channels_last:
            self.discriminator.to(memory_format=torch.channels_last)
        self._init_common(ema_decay, channels_last, grid_size)

    def on_fit_start(self) -> None:
        # Lightning warns that checkpoints of manually optimised modules hold the weights after
        # the batch's optimizer steps: that is the state a resumed run continues from.
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")

    def _latents(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        gen = self.net
        z = torch.randn(n, gen.latent_dim, generator=g, device=self.device)
        y = torch.randint(gen.num_classes, (n,), generator=g, device=self.device) if gen.conditional else None
        return z, y

    def _critic(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.discriminator(x, y if self.net.conditional else None)

    def _set_lr(self) -> None:
        hp = self.hparams
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        factor = 1.0 if hp.schedule == "constant" else max(0.0, 1.0 - self.batches_done / total)
        for opt, lr in zip(self.optimizers(), (hp.lr_d, hp.lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        g = self._step_generator(x.device)
        lo, hi = self.net.output_range
        x = lo + (hi - lo) * self._prepare(x, g)  # real images in the generator's range
        opt_d, opt_g = self.optimizers()
        self._set_lr()

        with self.toggled_optimizer(opt_d):
            z, y_fake = self._latents(len(x), g)
            with torch.no_grad():
                fake = self.net(z, y_fake)
            d_real, d_fake = self._critic(x, y), self._critic(fake, y_fake)
            loss_d = d_loss_fn(self.hparams.loss, d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()
        self.log_dict({D_LOSS: loss_d.detach(), D_REAL: d_real.detach().mean(), D_FAKE: d_fake.detach().mean()},
                      prog_bar=True)
        self._count_batch(len(x))

        if self.batches_done % self.hparams.n_dis == 0:
            with self.toggled_optimizer(opt_g):
                z, y_fake = self._latents(len(x), g)
                loss_g = g_loss_fn(self.hparams.loss, self._critic(self.net(z, y_fake), y_fake))
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(loss_g)
                opt_g.step()
            self._update_ema()
            self.log(G_LOSS, loss_g.detach(), prog_bar=True)

    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(map(float, hp.betas))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr_d, betas=betas, foreach=True)
        opt_g = torch.optim.Adam(self.net.parameters(), lr=hp.lr_g, betas=betas, foreach=True)
        return [opt_d, opt_g]

    def recipe(self) -> dict[str, Any]:
        return super().recipe() | {"ndf": self.discriminator.ndf, "projection": self.discriminator.num_classes > 0}

    def sampler(self, ema: bool = True) -> Generator:
        return self.net_ema if ema and self.net_ema is not None else self.net

    def export_info(self) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
        gen = self.sampler()
        if gen.output_activation != "tanh":
            raise ValueError("only tanh-output generators export (as sngan / cgan_pd)")
        family = "cgan_pd" if gen.conditional else "sngan"
        return family, {"nz": gen.latent_dim, "ngf": gen.ngf, "num_classes": gen.num_classes}, gen.state_dict()
