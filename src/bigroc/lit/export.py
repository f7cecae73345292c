"""Exports of trained models, each with a sidecar that says how it was made: robust classifiers
(:func:`export_trained`) and generators (:func:`export_generator`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning as L

from bigroc.data import CIFAR10DataModule
from bigroc.lit.generative import EXPORT_NAME, GenerativeTraining
from bigroc.lit.robust_training import RobustTraining
from bigroc.models import save_classifier, save_madry_checkpoint
from bigroc.provenance import command_line, machine
from bigroc.storage import atomic_write


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
