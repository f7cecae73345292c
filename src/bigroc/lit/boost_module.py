"""BIGRoC as a Lightning test loop: generate, boost, quantise, score, stream to disk.

The maths lives in :mod:`bigroc.boost` and :mod:`bigroc.metrics`; this module connects
them per batch and keeps the state that must survive multi-process runs and restarts:

- unconditional sources get their targets from the classifier, with the label shift
  calibrated once on a separate set of generated images (:meth:`Boost.calibrate`);
- every finished batch is written as a chunk (:class:`bigroc.storage.ChunkStore`); a restarted
  run reads finished chunks back instead of recomputing them and feeds the same uint8
  images to the metrics in the same batches, so its results equal an uninterrupted run's;
- scores are torchmetrics states, so DDP processes (each on its own block of indices)
  give the numbers of one process.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, Metric

from bigroc import keys
from bigroc.attacks import AttackSpec, check_in_ball
from bigroc.boost import balanced_shift, bigroc, debias_shift
from bigroc.metrics.scores import fid_inf_intervals, kid_intervals
from bigroc.storage import ChunkStore, quantize
from bigroc.run_checks import check_run_inputs


class LabelHistogram(Metric):
    """Counts per class, summed over processes."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, labels: torch.Tensor) -> None:
        self.counts += torch.bincount(labels.long(), minlength=len(self.counts))

    def compute(self) -> torch.Tensor:
        return self.counts


class Boost(L.LightningModule):
    """Boost ``source``'s images with ``classifier`` and score both versions.

    Args:
        source: a :class:`bigroc.generators.ImageSource` (generator or stored samples).
        classifier: robust classifier on [0, 1] images.
        attack: eps, steps, step size (``None``: eps / steps) and norm of the targeted PGD.
        seed: which images the source makes (image i depends on (seed, i) only).
        labels: ``auto`` (the source's labels if it has them, else predicted),
            ``generator`` or ``predicted``.
        debias: label shift for predicted targets: ``none``, ``mean`` (the paper's) or
            ``balanced`` (closest to uniform labels on the calibration set).
        calibration_samples, calibration_seed: the separate generated set the shift is fit on.
        scoring: what scores the images (a :class:`bigroc.scoring.Scoring`): ``new_scores()``
            gives fresh ``{"base": GenerativeScores, "boosted": ...}`` (torchmetrics), fed by
            ``features`` (an ``InceptionNet``: one row per image of pool3, spatial and logits,
            split by its ``layout``; a network without a ``layout`` gives pool3 rows alone) and,
            for the base images, ``base_features`` (e.g. the same network behind a disk
            cache). ``None`` scores nothing.
        chunks: where finished batches go; ``None`` keeps nothing (no resume).
        grid_size: images kept from the first batch for the before/after grid.
    """

    def __init__(self, source: nn.Module, classifier: nn.Module, attack: AttackSpec, *,
                 seed: int = 0, labels: str = "auto", debias: str = "mean",
                 calibration_samples: int = 1000, calibration_seed: int = 1_000_000,
                 scoring: Any = None, chunks: ChunkStore | None = None, grid_size: int = 16) -> None:
        super().__init__()
        check_run_inputs(source, classifier, labels, debias)
        k_src = source.num_classes
        self.source, self.classifier, self.attack = source, classifier, attack
        self.seed, self.debias, self.grid_size = int(seed), debias, int(grid_size)
        self.predicted = labels == "predicted" or (labels == "auto" and not source.conditional)
        self.calibration_samples, self.calibration_seed = calibration_samples, calibration_seed
        self.features = getattr(scoring, "features", None)
        self.base_features = getattr(scoring, "base_features", None) or self.features
        self.scores = nn.ModuleDict(scoring.new_scores() if scoring is not None else {})
        spec = getattr(scoring, "spec", None)
        self.kid_bootstrap = int(getattr(spec, "kid_bootstrap", 0))
        self.fid_inf_bootstrap = int(getattr(spec, "fid_inf_bootstrap", 0))
        self.chunks = chunks
        self.label_hist = LabelHistogram(k_src)
        self.target_prob = nn.ModuleDict({s: MeanMetric() for s in (keys.BASE, keys.BOOSTED)})
        self.delta_norm = MeanMetric()
        self.requires_grad_(False)
        self.logit_shift: torch.Tensor | None = None
        self.calibration: dict[str, list[int]] = {}
        self.grid: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # base, boosted, labels
        self.attack_model: nn.Module | None = None
        self.final: dict[str, Any] = {}  # every scalar of the run, set when the test loop ends

    # -- set-up --------------------------------------------------------------------------
    def on_test_start(self) -> None:
        from bigroc.models.fast import attack_ready

        self.attack_model = attack_ready(self.classifier).to(self.device)
        if self.predicted:
            self.calibrate()

    @torch.no_grad()
    def calibrate(self) -> None:
        """Fit the label shift on the calibration set; record each option's label histogram."""
        from bigroc.progress import Progress, print_line, silent

        n = min(self.calibration_samples, len(self.source))
        logits = []
        write = print_line if self.global_rank == 0 else silent
        with Progress(f"calibrating the label shift (debias={self.debias})", n, write=write) as progress:
            for idx in torch.arange(n).split(256):
                x, _ = self.source.generate(idx.to(self.device), self.calibration_seed)
                logits.append(self.attack_model(x.to(self.device)).float().cpu())
                progress.update(len(idx))
        logits = torch.cat(logits)
        shifts = {"none": torch.zeros(logits.shape[1]), "mean": debias_shift(logits),
                  "balanced": balanced_shift(logits)}
        k = logits.shape[1]
        self.calibration = {name: torch.bincount((logits + d).argmax(1), minlength=k).tolist()
                            for name, d in shifts.items()}
        self.logit_shift = shifts[self.debias].to(self.device)

    # -- one batch -----------------------------------------------------------------------
    def _boost_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, enabled=False):  # the base images do not depend on the
            x, y = self.source.generate(indices, self.seed)    # attack's precision (trainer.precision)
        x = x.to(self.device)
        predict = self.predicted or y is None
        a = self.attack
        x_boost, y = bigroc(self.attack_model, x, None if predict else y.to(self.device), eps=a.eps, steps=a.steps,
                            step_size=a.boost_step_size, norm=a.norm, use_best=a.use_best,
                            logit_shift=self.logit_shift if predict else None, stop_at=a.stop_at,
                            doubt_step=a.doubt_step)
        check_in_ball(x_boost, x, eps=a.eps, norm=a.norm)  # before anything is written
        return {"base": quantize(x), "boosted": quantize(x_boost), "labels": y.long()}

    def test_step(self, indices: torch.Tensor, batch_idx: int) -> None:
        chunk = self.chunks.load(indices) if self.chunks is not None else None
        if chunk is None:
            chunk = self._boost_batch(indices.to(self.device))
            if self.chunks is not None:
                self.chunks.save(indices, chunk["base"], chunk["boosted"], chunk["labels"])
        images = {keys.BASE: chunk["base"].to(self.device), keys.BOOSTED: chunk["boosted"].to(self.device)}
        y = chunk["labels"].to(self.device)
        self.label_hist.update(y)
        for stage, u8 in images.items():
            with torch.no_grad(), torch.autocast(self.device.type, enabled=False):  # measured in float32
                p = self.attack_model(u8.float() / 255).float().softmax(1)
            self.target_prob[stage].update(p.gather(1, y[:, None]).squeeze(1))
            if stage in self.scores:
                self._score(stage, u8, indices.to(self.device))
        diff = (images[keys.BOOSTED].float() - images[keys.BASE].float()) / 255
        self.delta_norm.update(diff.flatten(1).norm(dim=1))
        self._keep_for_grid(images, y)

    def _keep_for_grid(self, images: dict[str, torch.Tensor], y: torch.Tensor) -> None:
        """The first ``grid_size`` images of rank 0, for the before/after grid."""
        have = 0 if self.grid is None else len(self.grid[0])
        if self.global_rank != 0 or have >= self.grid_size:
            return
        new = [t[: self.grid_size - have].cpu() for t in (images[keys.BASE], images[keys.BOOSTED], y)]
        self.grid = tuple(new) if self.grid is None else tuple(
            torch.cat([old, n]) for old, n in zip(self.grid, new))

    @torch.no_grad()
    def _score(self, stage: str, u8: torch.Tensor, indices: torch.Tensor) -> None:
        with torch.autocast(self.device.type, enabled=False):  # the network picks its own precision
            rows = (self.base_features if stage == keys.BASE else self.features)(u8)
        layout = getattr(self.features, "layout", None)
        pool3, spatial, logits = layout.split(rows) if layout is not None else (rows, None, None)
        metric = self.scores[stage]
        metric.update(pool3, indices, logits, spatial if metric.with_sfid else None)

    # -- results -------------------------------------------------------------------------
    def on_test_epoch_end(self) -> None:
        self.final = self.results()  # every process: computing syncs the states

    def results(self) -> dict[str, Any]:
        """Every scalar of the run (synced over processes): ``base/fid``, ``boosted/...``."""
        out: dict[str, Any] = {}
        for stage in (keys.BASE, keys.BOOSTED):
            if stage in self.scores:
                for name, value in self.scores[stage].compute().items():
                    out[keys.score(stage, name)] = float(value)
            out[keys.score(stage, "target_prob")] = float(self.target_prob[stage].compute())
        if len(self.scores) == 2:
            pair = (self.scores[keys.BASE], self.scores[keys.BOOSTED])
            out.update(kid_intervals(*pair, self.kid_bootstrap))
            out.update(fid_inf_intervals(*pair, self.fid_inf_bootstrap))
        out[keys.score(keys.BOOSTED, "delta_l2")] = float(self.delta_norm.compute())
        out["labels/histogram"] = self.label_hist.compute().tolist()
        return out
