"""The end of an eps sweep (``run_boost.py -m``): one table and one plot of every job.

Registered as a Hydra callback in ``conf/boost.yaml``, so it runs once, in the launching
process, after all jobs (basic launcher, Slurm through submitit, ...). It reads each
job's ``metrics.json`` and writes ``summary.csv``, ``summary.md`` and ``summary.png``
(FID and KID against eps per generator, best eps starred) in the sweep directory.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback

from bigroc.storage import atomic_write

COLUMNS = ("generator", "eps", "steps", "step_size", "norm", "stop_at", "doubt_step", "num_samples", "labels",
           "debias")
SCORES = ("fid", "fid_inf", "sfid", "kid_mean", "precision", "recall", "is_mean", "target_prob")


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's metrics.json under ``sweep_dir``, with its folder as ``job``."""
    rows = []
    for path in sorted(sweep_dir.glob("*/metrics.json"), key=lambda p: p.parent.name):
        rows.append({"job": path.parent.name, **json.loads(path.read_text())})
    return name_sources(rows)


def name_sources(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One generator name over several checkpoints or samples files (``generator.path=a.npz,b.npz``)
    is told apart by the file's stem: ``samples:a``, ``samples:b``."""
    files: dict[str, set] = {}
    for r in rows:
        files.setdefault(r.get("generator"), set()).add(r.get("generator_checkpoint"))
    for r in rows:
        if len(files[r.get("generator")]) > 1 and r.get("generator_checkpoint"):
            r["generator"] = f"{r['generator']}:{Path(str(r['generator_checkpoint'])).stem}"
    return rows


def table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: settings, then base/boosted of every score some job has."""
    scores = [f"{stage}/{s}" for s in SCORES for stage in ("base", "boosted")
              if any(f"{stage}/{s}" in r for r in rows)]
    header = ["job", *COLUMNS, *scores]
    return header, [[r.get(c, "") for c in header] for r in rows]


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def best_eps(rows: Sequence[dict[str, Any]], metric: str = "boosted/fid") -> dict[str, float]:
    """Per generator, the eps of the lowest ``metric``."""
    best: dict[str, tuple[float, float]] = {}
    for r in rows:
        if metric in r and (r["generator"] not in best or r[metric] < best[r["generator"]][1]):
            best[r["generator"]] = (r["eps"], r[metric])
    return {g: e for g, (e, _) in best.items()}


def write_summary(sweep_dir: Path) -> list[Path]:
    """Write the CSV, markdown table and plot; returns their paths (none without results)."""
    from bigroc.summary_table import markdown_table
    from bigroc.viz import save_sweep_plot

    rows = collect(sweep_dir)
    if not rows:
        return []
    header, body = table(rows)
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *body])
    md = [markdown_table(header, [[_fmt(v) for v in row] for row in body])]
    md += [*(f"best eps for {g} (lowest boosted FID): {e:g}" for g, e in best_eps(rows).items())]
    out = [atomic_write(sweep_dir / "summary.csv", lambda t: t.write_text(buf.getvalue())),
           atomic_write(sweep_dir / "summary.md", lambda t: t.write_text("\n".join(md) + "\n"))]
    if any("boosted/fid" in r or "boosted/kid_mean" in r for r in rows):
        out.append(save_sweep_plot(sweep_dir / "summary.png", rows))
    return out


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep when the multirun ends."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        paths = write_summary(Path(config.hydra.sweep.dir))
        for p in paths:
            print(f"sweep summary: {p}")
