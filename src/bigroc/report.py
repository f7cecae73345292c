"""A finished boosting run on disk: samples, metrics.json, figures."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from bigroc import keys
from bigroc.storage import ChunkStore, atomic_write, write_samples
from bigroc.run_state import METRICS_FILE, read_json_object
from bigroc.data.cifar10 import CLASSES as CIFAR10_CLASSES
from bigroc.viz import save_before_after, save_label_histograms



def _parts(paths: Sequence[Path], stage: str, lo: int, hi: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Images ``lo..hi-1`` of ``stage`` as NHWC parts, read chunk by chunk."""
    for path in paths:
        with np.load(path) as f:
            idx = f["indices"]
            keep = (idx >= lo) & (idx < hi)
            if keep.any():
                yield f[stage][keep].transpose(0, 2, 3, 1), f["labels"][keep]


def merge_samples(chunks: ChunkStore, out_dir: Path, num_samples: int,
                  shard_size: int = 50_000) -> list[Path]:
    """Write ``samples_base.npz`` and ``samples_boosted.npz`` (ADM layout) from the chunks.

    More than ``shard_size`` images go to ``samples_<stage>_000.npz``, ``_001``, ...
    Memory holds one chunk at a time.
    """
    if shard_size < 1:
        raise ValueError(f"samples.shard_size must be >= 1, got {shard_size}")
    written, paths = [], chunks.chunks()
    shards = [(lo, min(lo + shard_size, num_samples)) for lo in range(0, num_samples, shard_size)]
    for stage in (keys.BASE, keys.BOOSTED):
        for k, (lo, hi) in enumerate(shards):
            name = f"samples_{stage}.npz" if len(shards) == 1 else f"samples_{stage}_{k:03d}.npz"
            written.append(write_samples(out_dir / name, hi - lo, _parts(paths, stage, lo, hi)))
    return written


def remove_chunks(chunks: ChunkStore) -> None:
    shutil.rmtree(chunks.root, ignore_errors=True)


def save_figures(out_dir: Path, grid, calibration: Mapping[str, Sequence[int]],
                 boosted_labels: Sequence[int]) -> dict[str, Path]:
    """The before/after grid (with 10x |delta|) and the label histograms (paper's Fig. 3)."""
    figures = {}
    if grid is not None:
        base, boosted, labels = grid
        names = CIFAR10_CLASSES if len(boosted_labels) == 10 else None
        figures["grid"] = save_before_after(out_dir / "grid_before_after.png", base, boosted, labels, names)
    histograms = {f"calibration, debias={k}": v for k, v in calibration.items()}
    histograms["targets used"] = list(boosted_labels)
    figures["label_histograms"] = save_label_histograms(
        out_dir / "label_histograms.png", histograms,
        CIFAR10_CLASSES if len(boosted_labels) == 10 else None,
        title="labels: calibration set under each debiasing, and the run's targets")
    return figures


def mean_over_seeds(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scalars averaged over seeds, with ``<key>_std`` beside each when there are several."""
    out: dict[str, Any] = {}
    for key, value in per_seed[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [float(r[key]) for r in per_seed]
            out[key] = statistics.fmean(values)
            if len(values) > 1:
                out[f"{key}_std"] = statistics.stdev(values)
        else:
            out[key] = value
    return out


def write_json(path: Path, values: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(values, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_metrics(out_dir: Path, metrics: Mapping[str, Any]) -> Path:
    return write_json(out_dir / METRICS_FILE, metrics)


def write_summary(out_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """``summary.md``: the run's scores, base vs boosted, as a Markdown table."""
    from bigroc.summary_table import score_table

    text = score_table(metrics, markdown=True)
    return atomic_write(Path(out_dir) / "summary.md", lambda tmp: tmp.write_text(text))


def read_metrics(out_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` of ``out_dir`` (None if absent); a file that is not a JSON object is refused."""
    path = Path(out_dir) / METRICS_FILE
    return read_json_object(path) if path.exists() else None
