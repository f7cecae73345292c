"""Madry-style adversarial training as a thin LightningModule around the engine.

Each training batch: untargeted PGD against the current weights (``bigroc.attacks.pgd``,
which runs the model in eval mode and restores it), then the loss on the adversarial batch
(optionally mixed with the clean loss). Validation and test: clean accuracy and accuracy
under untargeted PGD (``eval_steps`` steps of 2.5 * eps / eval_steps, no random start) at
each radius of ``val_eps`` / ``test_eps``, on a BatchNorm-folded copy of the classifier.
"""

from __future__ import annotations

import time
from typing import Sequence

import lightning as L
import torch
import torch.nn.functional as F

from bigroc import keys
from bigroc.attacks import AttackSpec, pgd
from bigroc.lit.throughput import ImagesPerSecond
from bigroc.models import Classifier, attack_ready

SCHEDULES = ("step", "onecycle")
TRAIN_SECONDS_KEY = "bigroc_train_seconds"


class RobustTraining(L.LightningModule):
    """Adversarial training of ``classifier`` against ``attack`` (run untargeted).

    Args:
        classifier: takes [0, 1] images; trained in place.
        attack: the training attack; ``step_size=None`` means 2.5 * eps / steps. ``eps=0``
            trains on the clean images alone: a standard (non-robust) baseline classifier.
        val_eps, test_eps: radii (same norm) for robust accuracy in validation and test.
        eval_steps: PGD steps of the evaluation attack.
        clean_weight: weight of the clean loss, 0 for pure adversarial training.
        lr, momentum, weight_decay, nesterov: SGD.
        schedule: ``step`` (lr x ``gamma`` at each epoch of ``milestones``, MadryLab's) or
            ``onecycle`` (warm-up then cosine annealing over the run, for short budgets).
        channels_last, compile: speed options (compile helps on GPUs).
        seed: seeds the attack's random start per step, so resuming is exact.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        attack: AttackSpec,
        val_eps: Sequence[float] = (0.25, 0.5, 1.0),
        test_eps: Sequence[float] = (0.25, 0.5, 1.0),
        eval_steps: int = 20,
        clean_weight: float = 0.0,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
        schedule: str = "step",
        milestones: Sequence[int] = (50, 100),
        gamma: float = 0.1,
        warmup_fraction: float = 0.15,
        channels_last: bool = False,
        compile: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not 0.0 <= clean_weight <= 1.0:
            raise ValueError(f"clean_weight must lie in [0, 1], got {clean_weight}")
        # Hydra hands lists over as ListConfig, which a weights-only checkpoint load refuses:
        # plain tuples go into the saved hyperparameters (read from these locals).
        val_eps, test_eps = tuple(map(float, val_eps)), tuple(map(float, test_eps))
        milestones = tuple(map(int, milestones))
        self.save_hyperparameters(ignore=["classifier", "attack"])
        if attack.stop_at is not None or attack.doubt_step:
            raise ValueError("attack.stop_at and attack.doubt_step make boosting confidence-aware; robust training "
                             "runs untargeted PGD, which they do not apply to: leave them at null and false")
        self.classifier, self.attack = classifier, attack
        self.train_step_size = attack.madry_step_size
        if channels_last:
            self.classifier.to(memory_format=torch.channels_last)
        if compile:
            self.classifier.compile()
        self._eval_model: Classifier | None = None
        self._rate = ImagesPerSecond()
        self.seconds_before = 0.0  # training wall time of earlier processes (resumes)
        self._fit_start: float | None = None
        self.tested_images = 0  # images behind the test metrics, summed over ranks
        self._seen = 0

    def on_train_start(self) -> None:
        self._fit_start = time.perf_counter()

    @property
    def train_seconds(self) -> float:
        """Wall time of the training so far, over every process a resume continued."""
        now = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return self.seconds_before + now

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[TRAIN_SECONDS_KEY] = self.train_seconds

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.seconds_before = float(checkpoint.get(TRAIN_SECONDS_KEY, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        g = torch.Generator(device=x.device).manual_seed(self.hparams.seed * 100_003 + self.global_step)
        spec = self.attack
        x_adv = x if spec.eps == 0 else pgd(
            self.classifier, x, y, eps=spec.eps, steps=spec.steps, step_size=self.train_step_size, norm=spec.norm,
            targeted=False, random_start=spec.random_start, use_best=spec.use_best, generator=g)
        logits = self.classifier(x_adv)
        loss = F.cross_entropy(logits, y)
        if self.hparams.clean_weight > 0:
            clean = F.cross_entropy(self.classifier(x), y)
            loss = (1 - self.hparams.clean_weight) * loss + self.hparams.clean_weight * clean
        self.log(keys.TRAIN_LOSS, loss, prog_bar=True)
        self.log(keys.TRAIN_ADV_ACC, (logits.argmax(1) == y).float().mean(), prog_bar=True)
        self.log(keys.TRAIN_LR, self.optimizers().param_groups[0]["lr"])
        self._rate.step(self, len(x))
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, radii: Sequence[float]) -> None:
        x, y = batch
        model = self._eval_model
        self._seen += len(x)
        # Accuracies are measured in float32 whatever the training precision, so a recipe
        # trained under bf16 autocast is scored by the same attack as any other.
        with torch.autocast(x.device.type, enabled=False):
            self._evaluate_fp32(model, x, y, stage, radii)

    def _evaluate_fp32(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, stage: str,
                       radii: Sequence[float]) -> None:
        with torch.no_grad():
            self.log(keys.clean_acc(stage), (model(x).argmax(1) == y).float().mean(),
                     batch_size=len(x), sync_dist=True, prog_bar=True)
        for eps in radii:
            spec = AttackSpec(eps=eps, steps=self.hparams.eval_steps, norm=self.attack.norm)
            x_adv = pgd(model, x, y, eps=eps, steps=spec.steps, step_size=spec.madry_step_size,
                        norm=self.attack.norm, targeted=False)
            with torch.no_grad():
                acc = (model(x_adv).argmax(1) == y).float().mean()
            self.log(keys.adv_acc(stage, eps), acc, batch_size=len(x), sync_dist=True,
                     prog_bar=eps == self.attack.eps)

    def _start_eval(self) -> None:
        self._eval_model = attack_ready(self.classifier, channels_last=self.hparams.channels_last)
        self._seen = 0

    def _end_eval(self) -> None:
        self._eval_model = None
        self._rate.reset()

    on_validation_epoch_start = on_test_epoch_start = _start_eval
    on_validation_epoch_end = _end_eval

    def on_test_epoch_end(self) -> None:
        seen = torch.tensor(float(self._seen), device=self.device)
        self.tested_images = int(self.trainer.strategy.reduce(seen, reduce_op="sum"))
        self._end_eval()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.hparams.val_eps)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.hparams.test_eps)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.SGD(self.classifier.parameters(), lr=hp.lr, momentum=hp.momentum,
                              weight_decay=hp.weight_decay, nesterov=hp.nesterov)
        if hp.schedule == "step":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.milestones), gamma=hp.gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=hp.lr, total_steps=int(self.trainer.estimated_stepping_batches),
            pct_start=hp.warmup_fraction, anneal_strategy="cos", div_factor=25, final_div_factor=1e3,
            cycle_momentum=False,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
