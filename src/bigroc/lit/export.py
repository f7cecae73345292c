"""Export a trained robust classifier with a sidecar that says how it was made."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import lightning as L

from bigroc.data import CIFAR10DataModule
from bigroc.lit.robust_training import RobustTraining
from bigroc.models import save_classifier, save_madry_checkpoint
from bigroc.provenance import command_line, machine


def export_trained(
    module: RobustTraining,
    data: CIFAR10DataModule,
    trainer: L.Trainer,
    *,
    out_dir: Path,
    test_metrics: Mapping[str, float],
    train_seconds: float,
    madry_layout: bool = False,
) -> Path:
    """Write ``out_dir/classifier.safetensors`` + ``classifier.json`` (and, if asked,
    ``classifier_madry.pt``); returns the safetensors path."""
    spec = module.attack
    images = trainer.global_step * data.batch_size * trainer.world_size  # all processes of a resumed run
    name, sha1 = data.fingerprint or ("unknown", "")
    meta: dict[str, Any] = {
        "dataset": name,
        "dataset_sha1": sha1,
        "train_eps": spec.eps,
        "train_attack": {
            "norm": spec.norm, "eps": spec.eps, "steps": spec.steps, "step_size": module.train_step_size,
            "random_start": spec.random_start, "use_best": spec.use_best,
        },
        "optimizer": {k: module.hparams[k] for k in ("lr", "momentum", "weight_decay", "nesterov", "schedule")},
        "epochs": round(trainer.global_step * data.batch_size * trainer.world_size / len(data.splits["train"]), 2),
        "global_step": trainer.global_step,
        "batch_size": data.batch_size * trainer.world_size,
        "metrics": dict(test_metrics),
        "test_images": module.tested_images if test_metrics else 0,
        "eval_attack": f"untargeted PGD, {module.hparams.eval_steps} steps of 2.5*eps/{module.hparams.eval_steps}, no random start",
        "wall_time_s": round(train_seconds, 1),  # training, summed over resumes
        "train_images_per_sec": round(images / train_seconds, 1) if train_seconds > 0 else None,
        "machine": machine(),
        "command": command_line(),
    }
    path = out_dir / "classifier.safetensors"
    save_classifier(module.classifier, path, meta=meta)
    if madry_layout:
        save_madry_checkpoint(module.classifier, out_dir / "classifier_madry.pt", epoch=trainer.current_epoch)
    return path
