"""The boosting job of ``run_boost.py``: every part built once and checked, run per seed.

:func:`build_job` instantiates the generator, classifier, attack and scoring from the config
and checks them against each other before anything is written; :func:`run_job` boosts and
scores each seed under a Lightning trainer, writes its samples and figures, and returns a
:class:`RunResult`. A job without a reference to score against carries :class:`NoScoring`,
an object like :class:`~bigroc.scoring.Scoring` that scores nothing and says why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import nn

from bigroc import report
from bigroc.attacks import AttackSpec
from bigroc.data import GeneratedDataModule
from bigroc.lit.boost_module import Boost
from bigroc.run_checks import check_classifier, check_eps_fits, check_run_inputs
from bigroc.run_state import ALL
from bigroc.scoring import check_reference_fits, prepare_scoring
from bigroc.storage import ChunkStore


@dataclass
class NoScoring:
    """Scores nothing: ``metrics=none``, or no reference data (``reason`` says which)."""

    reason: str
    features: nn.Module | None = None
    base_features: nn.Module | None = None

    def new_scores(self) -> dict[str, nn.Module]:
        return {}

    @property
    def info(self) -> dict[str, Any]:
        return {"scored": self.reason}


@dataclass
class BoostJob:
    """What a boosting run needs, built once from the config and checked."""

    source: nn.Module
    classifier: nn.Module
    attack: AttackSpec
    scoring: Any  # a bigroc.scoring.Scoring, or NoScoring
    cfg: DictConfig
    num_samples: int  # cfg.num_samples, with ``all`` resolved to the source's size

    @property
    def scores(self) -> bool:
        return not isinstance(self.scoring, NoScoring)


@dataclass
class RunResult:
    """``metrics`` (what metrics.json holds) and the saved ``figures`` (by name) of every seed."""

    metrics: dict[str, Any]
    figures: dict[str, Path] = field(default_factory=dict)


def images_to_boost(num_samples: int | str, available: int) -> int:
    """``num_samples`` as a count: ``all`` is every image of a finite source (samples files)."""
    if num_samples == ALL:
        if available == sys.maxsize:
            raise ValueError("num_samples=all needs a source of finitely many images (generator=samples); "
                             "a generator makes any number: give one, e.g. num_samples=10000")
        return available
    if num_samples > available:
        raise ValueError(f"num_samples={num_samples} but the source holds {available} images; "
                         f"lower num_samples, or num_samples=all")
    return num_samples


def build_job(cfg: DictConfig, attack: AttackSpec) -> BoostJob:
    """Instantiate and check every part; nothing is written (references may be cached)."""
    from hydra.utils import instantiate

    source = instantiate(cfg.generator)
    num_samples = images_to_boost(cfg.num_samples, len(source))
    classifier = instantiate(cfg.classifier)
    check_classifier(classifier, str(cfg.classifier.checkpoint or cfg.classifier.arch), source.image_shape)
    check_run_inputs(source, classifier, cfg.labels, cfg.debias)
    check_eps_fits(attack.eps, attack.norm, source.image_shape)
    spec = instantiate(cfg.metrics) if cfg.metrics else None
    check_reference_fits(spec, source.image_shape)
    scoring, why_not = prepare_scoring(spec, cfg.data.root, download=cfg.data.download)
    return BoostJob(source, classifier, attack, scoring or NoScoring(why_not), cfg, num_samples)


def choose_batch_size(job: BoostJob, device: torch.device, recorded: tuple[int, str] | None) -> tuple[int, str]:
    """The images per step and how it was chosen: what an interrupted run recorded (so its
    batches are found again), else ``batch_size`` resolved on ``device`` (:mod:`bigroc.batch_size`)."""
    from bigroc import batch_size
    from bigroc.metrics.reference import default_cache_dir
    from bigroc.models.fast import attack_ready

    if recorded is not None:
        return int(recorded[0]), str(recorded[1])
    cfg = job.cfg
    height, width = job.source.image_shape
    key = f"{cfg.classifier.checkpoint or cfg.classifier.arch} {height}x{width} {cfg.trainer.precision}"
    bf16 = str(cfg.trainer.precision) == "bf16-mixed"
    make_step = lambda: batch_size.attack_step(attack_ready(job.classifier).to(device), (height, width),  # noqa: E731
                                               device, autocast=bf16)
    cache = default_cache_dir(cfg.metrics.get("cache_dir") if cfg.metrics else None)
    size, info = batch_size.resolve(batch_size.checked(cfg.batch_size, "batch_size"), "attack", device, key,
                                    make_step, cache)
    probed = f" (images/s by batch: {info['images_per_s']})" if "images_per_s" in info else ""
    return size, info["chosen"] + probed


def run_job(job: BoostJob, trainer: L.Trainer, out_dir: Path, settings: dict[str, Any]) -> RunResult:
    """Boost and score every seed; rank zero writes samples and figures and gets the result."""
    cfg, seeds, digest = job.cfg, settings["seeds"], settings["run_digest"]
    per_seed, figures = [], {}
    for seed in seeds:
        chunks = ChunkStore(out_dir / ".chunks" / f"seed{seed}", digest=digest)
        module = Boost(job.source, job.classifier, job.attack, seed=seed, labels=cfg.labels, debias=cfg.debias,
                       calibration_samples=cfg.calibration.samples, calibration_seed=cfg.calibration.seed,
                       scoring=job.scoring, chunks=chunks, grid_size=cfg.grid_size)
        trainer.test(module, datamodule=GeneratedDataModule(job.num_samples, settings["batch_size_used"]))
        if not trainer.is_global_zero:
            continue
        seed_dir = out_dir if len(seeds) == 1 else out_dir / f"seed{seed}"
        seed_dir.mkdir(parents=True, exist_ok=True)
        report.merge_samples(chunks, seed_dir, job.num_samples, cfg.samples.shard_size)
        saved = report.save_figures(seed_dir, module.grid, module.calibration, module.final["labels/histogram"])
        prefix = "" if len(seeds) == 1 else f"seed{seed}/"  # every seed's figures are logged
        figures.update({prefix + name: path for name, path in saved.items()})
        per_seed.append({**module.final, "debias/calibration": module.calibration})
    if not trainer.is_global_zero:
        return RunResult({})
    metrics = {**report.mean_over_seeds(per_seed), **settings, "images": job.num_samples, **job.scoring.info}
    return RunResult(metrics, figures)
