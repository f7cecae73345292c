"""BIGRoC on published generators' samples: the results table and the paper's ablations.

    python benchmarks/external_results.py                       # the whole table (about an hour on 2 CPU cores)
    python benchmarks/external_results.py --quick               # 8 images per set, 3 steps, no scores: a check
    python benchmarks/external_results.py -- trainer.precision=32-true   # extra run_boost.py settings

Pools the 27 sample sets of ``shared/data/external-samples`` into the family groups of
``external_groups.py`` and boosts every group with ``run_boost.py`` (one Hydra multirun per
variant; every run writes its own ``metrics.json``, samples and figures):

    eps        L2 eps 0.5, 1.0, 2.0, 30 steps: the main result (eps 1.0) and the eps sweep
    debias     predicted labels without and with balanced debiasing (mean is the main run's)
    steps7     7 steps instead of 30
    linf       L-inf at the perturbation of the L2 eps 1.0 run (the paper's Fig. 4 protocol:
               eps = the 70th percentile of its per-pixel changes), one per group
    small      the earlier, weaker shipped classifier (classifier=cifar10_l2_small)

then writes ``results.md`` and ``results.json`` (KID with its 95% bootstrap intervals) to
``--out`` and copies ``results.md`` and the figures (a before/after grid and the label
histograms per group, the eps sweep) to ``--figures``. Runs already finished are
not run again, so a stopped script resumes where it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from external_groups import GROUPS, Group, write_group  # noqa: E402

from bigroc.progress import Progress  # noqa: E402

MAIN_EPS = 1.0
SWEEP_EPS = (0.5, 1.0, 2.0)
LINF_PERCENTILE = 70


def _run_boost(sweep_dir: Path, paths: list[Path], overrides: list[str], extra: list[str],
               progress: Progress) -> None:
    """One multirun of run_boost.py over ``paths`` (and any swept override). The variant's own
    ``overrides`` come last, so ``extra`` (precision, --quick's sizes) cannot undo what defines it.
    ``progress`` counts the runs it finishes."""
    if _finished(sweep_dir) >= len(paths) * _jobs_per_path(overrides):
        return
    cmd = [sys.executable, str(REPO / "run_boost.py"), "-m", "generator=samples",
           "generator.path=" + ",".join(str(p) for p in paths), "num_samples=all", "logger=none",
           f"hydra.sweep.dir={sweep_dir}", *extra, *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    before = _finished(sweep_dir)
    subprocess.run(cmd, cwd=REPO, check=True)
    progress.update(_finished(sweep_dir) - before)


def _to_run(sweep_dir: Path, paths: list[Path], overrides: list[str]) -> int:
    """Runs of a variant not finished yet."""
    return max(len(paths) * _jobs_per_path(overrides) - _finished(sweep_dir), 0)


def _jobs_per_path(overrides: list[str]) -> int:
    n = 1
    for o in overrides:
        if "=" in o and "," in o.split("=", 1)[1]:
            n *= len(o.split("=", 1)[1].split(","))
    return n


def _finished(sweep_dir: Path) -> int:
    return len(list(sweep_dir.glob("*/metrics.json")))


def runs(sweep_dir: Path) -> list[tuple[Path, dict]]:
    """(run directory, metrics) of every finished run of a variant."""
    return [(p.parent, json.loads(p.read_text())) for p in sorted(sweep_dir.glob("*/metrics.json"))]


def group_of(metrics: dict) -> str:
    return Path(str(metrics["generator_checkpoint"])).stem


def linf_matched_eps(run_dir: Path, percentile: float = LINF_PERCENTILE) -> float:
    """The ``percentile`` of the per-pixel |boosted - base| of an L2 run (pixel units, >= 1/255)."""
    with np.load(run_dir / "samples_base.npz") as a, np.load(run_dir / "samples_boosted.npz") as b:
        change = np.abs(b["arr_0"].astype(np.int16) - a["arr_0"].astype(np.int16)) / 255.0
    return max(round(float(np.percentile(change, percentile)), 4), round(1 / 255, 4))


def run_all(groups: list[Group], paths: dict[str, Path], out: Path, extra: list[str], quick: bool) -> None:
    """Every variant's multirun; a progress line (runs done of those left, time left) after each."""
    everything = [paths[g.name] for g in groups]
    unconditional = [paths[g.name] for g in groups if not g.conditional]
    sweep = [MAIN_EPS] if quick else list(SWEEP_EPS)
    variants = [(out / "eps", everything, ["epsilon=" + ",".join(map(str, sweep))]),
                (out / "debias", unconditional, [f"epsilon={MAIN_EPS}", "debias=none,balanced"]),
                (out / "steps7", everything, [f"epsilon={MAIN_EPS}", "steps=7"]),
                (out / "small", everything, [f"epsilon={MAIN_EPS}", "classifier=cifar10_l2_small"])]
    linf_left = max(len(groups) - sum(_finished(d) for d in out.glob("linf_*")), 0)  # one L-inf run per group
    total = sum(_to_run(*v) for v in variants) + linf_left
    with Progress("external results", total, unit="runs") as progress:
        for sweep_dir, variant_paths, overrides in variants:
            _run_boost(sweep_dir, variant_paths, overrides, extra, progress)
        # L-inf, matched to each group's L2 eps-1.0 run; groups of one matched eps share a multirun
        by_eps: dict[float, list[Path]] = {}
        for run_dir, m in runs(out / "eps"):
            if m["eps"] == MAIN_EPS:
                by_eps.setdefault(linf_matched_eps(run_dir), []).append(paths[group_of(m)])
        for eps, group_paths in sorted(by_eps.items()):
            _run_boost(out / f"linf_{eps:g}", sorted(group_paths), ["attack=linf", f"epsilon={eps}"], extra, progress)


# -- the tables ----------------------------------------------------------------------------
def _kid(m: dict, stage: str) -> str:
    lo, hi = m.get(f"{stage}/kid_ci_low"), m.get(f"{stage}/kid_ci_high")
    mean = m.get(f"{stage}/kid_mean")
    if mean is None:
        return "-"
    return f"{1e3 * mean:.1f} [{1e3 * lo:.1f}, {1e3 * hi:.1f}]" if lo is not None else f"{1e3 * mean:.1f}"


def _change(m: dict) -> str:
    lo, hi = m.get("boosted/kid_change_ci_low"), m.get("boosted/kid_change_ci_high")
    if lo is None:
        return "-"
    mark = " (lower)" if hi < 0 else " (higher)" if lo > 0 else ""
    return f"{1e3 * (m['boosted/kid_mean'] - m['base/kid_mean']):+.1f} [{1e3 * lo:+.1f}, {1e3 * hi:+.1f}]{mark}"


def _fid(m: dict, stage: str) -> str:
    return f"{m[f'{stage}/fid']:.1f}" if f"{stage}/fid" in m else "-"


def _pick(rows: list[dict], group: str, **settings) -> dict | None:
    for m in rows:
        if group_of(m) == group and all(m.get(k) == v for k, v in settings.items()):
            return m
    return None


def summarise(groups: list[Group], out: Path) -> dict:
    variants = {d.name: [m for _, m in runs(d)] for d in sorted(out.iterdir()) if d.is_dir() and d.name != "groups"}
    linf = [m for name, rows in variants.items() if name.startswith("linf_") for m in rows]
    table = {}
    for g in groups:
        main = _pick(variants.get("eps", []), g.name, eps=MAIN_EPS)
        if main is None:
            continue
        sweep = {m["eps"]: m for m in variants.get("eps", []) if group_of(m) == g.name}
        scored = {e: m for e, m in sweep.items() if "boosted/fid" in m}
        table[g.name] = {
            "title": g.title, "images": main.get("images"), "jpeg": g.jpeg, "conditional": g.conditional,
            "main": main, "sweep": sweep,
            "best_eps_fid": min(scored, key=lambda e: scored[e]["boosted/fid"]) if scored else None,
            "best_eps_kid": min(scored, key=lambda e: scored[e]["boosted/kid_mean"]) if scored else None,
            "debias": {d: _pick(variants.get("debias", []), g.name, debias=d) for d in ("none", "balanced")},
            "steps7": _pick(variants.get("steps7", []), g.name),
            "small": _pick(variants.get("small", []), g.name),
            "linf": _pick(linf, g.name),
        }
    return table


def reference_text(m: dict) -> str:
    return (f"{m.get('reference')} (first {m.get('reference_samples')} images of the JPEG-rebuilt CIFAR-10), "
            f"{m.get('inception')}; classifier {m.get('classifier')}, boosting precision {m.get('precision')}")


def markdown(table: dict, reference: str) -> str:
    lines = [f"Reference: {reference}. KID x 10^3 with its 95% paired-bootstrap interval; the change interval "
             "below zero means boosting lowered KID. L2, 30 steps of eps/30, eps 1.0 unless said.", ""]
    head = ("| group | images | FID base -> boosted | KID base | KID boosted | KID change | p(target) | "
            "best eps (FID / KID) |")
    lines += ["## Main result (eps 1.0)", "", head, "|---|---|---|---|---|---|---|---|"]
    for jpeg in (False, True):
        for name, r in table.items():
            if r["jpeg"] != jpeg:
                continue
            m = r["main"]
            p = f"{m['base/target_prob']:.2f} -> {m['boosted/target_prob']:.2f}"
            lines.append(f"| {name}{' (JPEG)' if jpeg else ''} | {r['images']} | {_fid(m, 'base')} -> "
                         f"{_fid(m, 'boosted')} | {_kid(m, 'base')} | {_kid(m, 'boosted')} | {_change(m)} | {p} | "
                         f"{r['best_eps_fid']} / {r['best_eps_kid']} |")
    lines += ["", "## eps sweep (boosted FID / KID x 10^3)", "",
              "| group | base | " + " | ".join(f"eps {e:g}" for e in SWEEP_EPS) + " |",
              "|---|---|" + "---|" * len(SWEEP_EPS)]
    for name, r in table.items():
        cells = [f"{_fid(r['sweep'][e], 'boosted')} / {1e3 * r['sweep'][e]['boosted/kid_mean']:.1f}"
                 if e in r["sweep"] and "boosted/kid_mean" in r["sweep"][e] else "-" for e in SWEEP_EPS]
        m = r["main"]
        base = f"{_fid(m, 'base')} / {1e3 * m['base/kid_mean']:.1f}" if "base/kid_mean" in m else "-"
        lines.append(f"| {name} | {base} | " + " | ".join(cells) + " |")
    lines += ["", "## Ablations (boosted KID x 10^3 and its change; FID in brackets)", "",
              "| group | debias none | mean (main) | balanced | 7 steps | L-inf matched (eps) | weaker classifier |",
              "|---|---|---|---|---|---|---|"]

    def cell(m: dict | None) -> str:
        if m is None or "boosted/kid_mean" not in m:
            return "-"
        return f"{1e3 * m['boosted/kid_mean']:.1f} ({m['boosted/fid']:.1f}), {_change(m).split(' [')[0]}"

    for name, r in table.items():
        lin = r["linf"]
        lin_cell = cell(lin) + (f" (eps {lin['eps']:.4g})" if lin else "")
        lines.append(f"| {name} | {cell(r['debias']['none'])} | {cell(r['main'])} | {cell(r['debias']['balanced'])} | "
                     f"{cell(r['steps7'])} | {lin_cell} | {cell(r['small'])} |")
    lines += ["", "Label histograms of predicted labels (main run, debias=mean):", ""]
    for name, r in table.items():
        lines.append(f"- {name}: {r['main'].get('labels/histogram')}")
    return "\n".join(lines) + "\n"


def copy_figures(out: Path, figures: Path, table: dict) -> None:
    figures.mkdir(parents=True, exist_ok=True)
    for run_dir, m in runs(out / "eps"):
        if m["eps"] == MAIN_EPS and (run_dir / "grid_before_after.png").exists():
            shutil.copyfile(run_dir / "grid_before_after.png", figures / f"{group_of(m)}_grid.png")
            shutil.copyfile(run_dir / "label_histograms.png", figures / f"{group_of(m)}_labels.png")
    if (out / "eps" / "summary.png").exists():
        shutil.copyfile(out / "eps" / "summary.png", figures / "eps_sweep.png")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "data" / "external-samples",
                        help="the folder of the 27 .npz sets (default: shared/data/external-samples beside the repo)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: outputs/external (outputs/external_quick with --quick, never mixed)")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "results" / "external")
    parser.add_argument("--quick", action="store_true", help="8 images per set, 3 steps, no scores")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.quick:  # scores nothing, so the settings of the scores have nothing to set
        unscored = [e for e in extra if not e.startswith("metrics.")]
        extra = ["steps=3", "metrics=none", "calibration.samples=16", *unscored]
    out = (args.out or REPO / "outputs" / ("external_quick" if args.quick else "external")).resolve()
    start = time.perf_counter()
    paths = {g.name: write_group(g, args.samples, out / "groups", 8 if args.quick else None) for g in GROUPS}
    run_all(list(GROUPS), paths, out, extra, args.quick)
    table = summarise(list(GROUPS), out)
    text = markdown(table, reference_text(next(iter(table.values()))["main"])) if table and not args.quick else ""
    (out / "results.json").write_text(json.dumps(table, indent=1, default=str))
    if text:
        (out / "results.md").write_text(text)
        copy_figures(out, args.figures, table)
        (args.figures / "results.md").write_text(text)
    print(text or json.dumps({g: r["main"].get("boosted/target_prob") for g, r in table.items()}))
    print(f"wall time {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
