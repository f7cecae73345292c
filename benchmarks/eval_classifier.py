"""Clean and robust accuracy of a classifier on the CIFAR-10 test split, in float32.

    python benchmarks/eval_classifier.py --checkpoint outputs/train_robust/.../classifier.safetensors \
        --data-root data --eps 0.25 0.5 1.0 [--images 10000] [--update-sidecar]

The attack is train_robust.py's final test: untargeted L2 PGD, 20 steps of 2.5 * eps / 20, no
random start, on the BatchNorm-folded classifier, float32 whatever the training precision.
``--update-sidecar`` writes the accuracies into the export's ``.json`` sidecar (``metrics``,
``test_images``, ``eval_attack``), as train_robust.py's own test would have.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench_common import CoreWatch, describe_machine
from bigroc.attacks import AttackSpec, pgd
from bigroc.data import read_cifar10
from bigroc.models import attack_ready, load_classifier
from bigroc.models.checkpoints import sidecar_path

STEPS = 20


def accuracies(classifier, x_u8: torch.Tensor, y: torch.Tensor, radii: list[float], batch: int) -> dict[str, float]:
    model = attack_ready(classifier)
    correct = {"test/clean_acc": 0, **{f"test/adv_acc@{eps:g}": 0 for eps in radii}}
    for lo in range(0, len(y), batch):
        x, t = x_u8[lo:lo + batch].float() / 255, y[lo:lo + batch]
        with torch.no_grad():
            correct["test/clean_acc"] += int((model(x).argmax(1) == t).sum())
        for eps in radii:
            spec = AttackSpec(eps=eps, steps=STEPS)
            x_adv = pgd(model, x, t, eps=eps, steps=STEPS, step_size=spec.madry_step_size, targeted=False)
            with torch.no_grad():
                correct[f"test/adv_acc@{eps:g}"] += int((model(x_adv).argmax(1) == t).sum())
    return {k: v / len(y) for k, v in correct.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--images", type=int, default=10000, help="the first N test images")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--update-sidecar", action="store_true")
    args = parser.parse_args()
    print(describe_machine())
    classifier = load_classifier(args.checkpoint)
    x, y = read_cifar10(args.data_root, "test")
    x, y = x[:args.images], y[:args.images]
    start = time.perf_counter()
    with CoreWatch() as watch:
        result = accuracies(classifier, x, y, args.eps, args.batch)
    print(json.dumps({k: round(v, 4) for k, v in result.items()}),
          f"({len(y)} test images, {time.perf_counter() - start:.0f} s)")
    print(watch.verdict())
    if args.update_sidecar:
        path = sidecar_path(args.checkpoint)
        meta = json.loads(path.read_text())
        meta.update({"metrics": result, "test_images": len(y),
                     "eval_attack": f"untargeted PGD, {STEPS} steps of 2.5*eps/{STEPS}, no random start, float32"})
        path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"updated {path}")


if __name__ == "__main__":
    main()
