"""Scores of images already on disk: a finished run's samples, or any ADM-style ``.npz``.

A run that could not be scored when it ran (no reference data yet) is scored from its
saved samples by the same command once the data is there (:func:`score_finished_run`):
the same uint8 images, the same metrics, no second boost.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bigroc import keys

BATCH = 250  # images per Inception pass


def score_npz(paths: Sequence[Path], scores: Any, net: torch.nn.Module) -> dict[str, float]:
    """Feed the ``arr_0`` images of ``paths`` (shards, in order) through ``net`` (an
    ``InceptionNet``, possibly behind a cache) to a fresh ``scores`` metric; progress lines
    (:mod:`bigroc.progress`) per file."""
    from bigroc.generators.samples import read_npz
    from bigroc.progress import Progress

    layout = net.layout
    offset = 0
    for path in paths:
        images, _ = read_npz(path, None)
        with Progress(f"scoring {path.name}", len(images)) as progress:
            for lo in range(0, len(images), BATCH):
                u8 = torch.from_numpy(np.array(images[lo:lo + BATCH])).permute(0, 3, 1, 2)  # a writable copy
                with torch.no_grad():
                    pool3, spatial, logits = layout.split(net(u8))
                scores.update(pool3, torch.arange(offset + lo, offset + lo + len(u8)), logits,
                              spatial if scores.with_sfid else None)
                progress.update(len(u8))
        offset += len(images)
    return scores.compute()


def image_shape_of(path: Path) -> tuple[int, int]:
    """(height, width) of the images of an ADM-style ``.npz``, from its header alone."""
    from bigroc.generators.samples import NPZ_FIX
    from bigroc.storage import npz_header

    try:
        shape, _ = npz_header(path, "arr_0")
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as err:
        if isinstance(err, ValueError) and str(path) in str(err):  # its own refusal (a FIFO, a symlink member)
            raise
        raise ValueError(f"{path} is not a readable .npz with arr_0 ({type(err).__name__}); {NPZ_FIX}") from None
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"{path}: arr_0 has shape {shape}, not (N, H, W, 3); {NPZ_FIX}")
    return int(shape[1]), int(shape[2])


def sample_files(folder: Path, stage: str) -> list[Path]:
    """``samples_<stage>.npz``, or its shards ``samples_<stage>_000.npz``, ... in order."""
    single = folder / f"samples_{stage}.npz"
    return [single] if single.exists() else sorted(folder.glob(f"samples_{stage}_[0-9][0-9][0-9].npz"))


def samples_to_score(target: Path) -> dict[str, list[Path]]:
    """The ``.npz`` files ``score.py samples=target`` scores, by the name their scores take:
    an ``.npz`` by its stem, a run directory's ``base`` and ``boosted`` samples."""
    if not target.is_dir():
        return {target.stem: [target]}
    stages = {stage: sample_files(target, stage) for stage in (keys.BASE, keys.BOOSTED)}
    if not any(stages.values()):
        raise ValueError(f"{target} holds no samples_base.npz or samples_boosted.npz; give a run directory "
                         "of run_boost.py or an .npz")
    return {stage: files for stage, files in stages.items() if files}


def score_samples(stages: dict[str, list[Path]], scoring: Any) -> dict[str, float]:
    """Scores of the files of :func:`samples_to_score` (``<name>/fid``, ``base/fid``, ...)."""
    fresh = scoring.new_scores()
    out = {}
    for stage, files in stages.items():
        metric = fresh.get(stage, fresh[keys.BOOSTED])
        net = scoring.base_features if stage == keys.BASE else scoring.features
        for name, value in score_npz(files, metric, net).items():
            out[keys.score(stage, name)] = value
    return out


def is_unscored(metrics: dict[str, Any]) -> bool:
    return str(metrics.get("scored", "")).startswith("not scored")


def score_finished_run(out_dir: Path, metrics: dict[str, Any], scoring: Any) -> dict[str, Any]:
    """``metrics`` of a finished, unscored run with the scores of its saved samples added."""
    from bigroc.report import mean_over_seeds

    seeds = metrics["seeds"]
    per_seed = []
    for seed in seeds:
        folder = out_dir if len(seeds) == 1 else out_dir / f"seed{seed}"
        fresh = scoring.new_scores()
        result = {}
        for stage, net in ((keys.BASE, scoring.base_features), (keys.BOOSTED, scoring.features)):
            files = sample_files(folder, stage)
            if not files:
                raise ValueError(f"{folder} has no samples_{stage}.npz to score; run the job again in a new "
                                 "hydra.run.dir")
            for name, value in score_npz(files, fresh[stage], net).items():
                result[keys.score(stage, name)] = value
        per_seed.append(result)
    scored = {k: v for k, v in metrics.items() if k != "scored"}
    return {**scored, **mean_over_seeds(per_seed), **scoring.info}
