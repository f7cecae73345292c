"""Adversarial-training throughput: the project's Lightning path against a plain loop.

    python benchmarks/bench_train.py                         # both settings, batch 128
    python benchmarks/bench_train.py --settings cpu --steps 20 --precisions 32-true bf16-mixed

Settings (as in conf/experiment/): ``cpu`` is the CPU-sized recipe (ResNet-18 at width 16,
L2 eps 0.5, 3 PGD steps with random start, channels-last); ``resnet50`` is the paper's
(ResNet-50, 7 steps of 0.1, best iterate). Both run on random uint8 images, so the figures
measure compute, not data loading. The reference is the plain PyTorch loop MadryLab's
library runs (attack with the model in eval mode, loss on the adversarial batch, SGD step),
contiguous fp32, timed in the same process over the same number of steps.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from bench_common import CoreWatch, describe_machine, quiet_output
from bigroc.attacks import AttackSpec, pgd
from bigroc.data import ResumableLoader
from bigroc.lit import RobustTraining
from bigroc.models import build_classifier
from bigroc.precision import hardware_has_bf16

SETTINGS = {
    "cpu": dict(arch="resnet18", width=0.25, attack=AttackSpec(eps=0.5, steps=3, random_start=True),
                channels_last=True),
    "resnet50": dict(arch="resnet50", width=1.0, attack=AttackSpec(eps=0.5, steps=7, step_size=0.1, use_best=True),
                     channels_last=True),
}


class StepTimer(L.Callback):
    """Wall time of the training steps after the first ``warmup``."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds = warmup, None, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        self.seconds = time.perf_counter() - self.start


def reference_steps(setting: dict, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds for ``steps`` plain adversarial-training steps (after one warm-up step)."""
    torch.manual_seed(0)
    model = build_classifier(setting["arch"], width=setting["width"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    spec = setting["attack"]
    step_size = spec.madry_step_size
    start = 0.0
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        xb = x[i % len(x)].float() / 255
        x_adv = pgd(model, xb, y[i % len(y)], eps=spec.eps, steps=spec.steps, step_size=step_size,
                    targeted=False, random_start=spec.random_start, use_best=spec.use_best)
        loss = F.cross_entropy(model.train()(x_adv), y[i % len(y)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def lightning_steps(setting: dict, x: torch.Tensor, y: torch.Tensor, steps: int, precision: str) -> float:
    torch.manual_seed(0)
    module = RobustTraining(build_classifier(setting["arch"], width=setting["width"]), attack=setting["attack"],
                            schedule="onecycle", channels_last=setting["channels_last"])
    batch = x.shape[1]
    loader = ResumableLoader(TensorDataset(x.flatten(0, 1), y.flatten()), batch_size=batch, seed=0)
    module.on_after_batch_transfer = lambda b, i: (b[0].float() / 255, b[1])
    timer = StepTimer(warmup=1)
    trainer = L.Trainer(max_steps=steps + 1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, precision=precision, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="Lightning precisions (default: 32-true, and bf16-mixed where the hardware has bf16 units)")
    args = parser.parse_args()
    precisions = args.precisions or ["32-true"] + (["bf16-mixed"] if hardware_has_bf16(
        "cuda" if torch.cuda.is_available() else "cpu") else [])
    quiet_output()
    print(describe_machine())
    print(f"batch {args.batch}, {args.steps} timed steps")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.steps + 1, args.batch, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (args.steps + 1, args.batch), generator=g)
    images = args.batch * args.steps
    with CoreWatch() as watch:
        for name in args.settings:
            setting = SETTINGS[name]
            ref = reference_steps(setting, x, y, args.steps)
            row = f"{name:9s} reference loop (fp32) {images / ref:7.1f} img/s"
            for precision in precisions:
                ours = lightning_steps(setting, x, y, args.steps, precision)
                row += f" | RobustTraining {precision} {images / ours:7.1f} img/s ({ref / ours:.2f}x)"
            print(row, flush=True)
    print(watch.verdict())


if __name__ == "__main__":
    main()
