"""What identifies a boosting run, so a restart can tell its own leftovers from another run's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bigroc.io import atomic_write

SETTINGS_FILE = "settings.json"


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """The settings that decide a run's images and scores, as recorded in metrics.json."""
    from hydra.utils import instantiate

    a = instantiate(cfg.attack)  # an AttackSpec: validated, and one rule for the default step
    return {
        "eps": float(a.eps), "steps": int(a.steps), "step_size": float(a.boost_step_size), "norm": a.norm,
        "generator": cfg.generator.name,
        "generator_checkpoint": cfg.generator.get("checkpoint") or cfg.generator.get("path"),
        "classifier": cfg.classifier.checkpoint,
        "num_samples": int(cfg.num_samples),
        "seeds": [int(s) for s in (cfg.seeds if cfg.seeds is not None else [cfg.seed])],
        "labels": cfg.labels, "debias": cfg.debias,
        "calibration_samples": int(cfg.calibration.samples),
        "calibration_seed": int(cfg.calibration.seed),
        "batch_size": int(cfg.batch_size),
        "metrics": OmegaConf.to_container(cfg.metrics, resolve=True) if cfg.metrics else None,
    }


def check_run_dir(out_dir: Path, settings: dict[str, Any]) -> str:
    """``"done"`` if ``out_dir`` holds this run's finished results, else ``"go"``.

    Finding unfinished chunks of other settings there is an error (resuming them would
    mix two runs); nothing is deleted or written.
    """
    settings = json.loads(json.dumps(settings))  # the form they take on disk
    metrics = out_dir / "metrics.json"
    if metrics.exists():
        done = json.loads(metrics.read_text())
        if all(done.get(k) == v for k, v in settings.items()):
            return "done"
    path = out_dir / ".chunks" / SETTINGS_FILE
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise ValueError(f"{out_dir} holds the unfinished batches of a run with other settings "
                             f"({', '.join(changed)} differ); choose another hydra.run.dir or delete "
                             f"{path.parent}")
    return "go"


def record_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    """Write ``settings`` beside the chunks, for :func:`check_run_dir` of a restart."""
    path = out_dir / ".chunks" / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(settings, indent=2)))
