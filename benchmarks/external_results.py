"""BIGRoC on published generators' samples: the results table and the paper's ablations.

    python benchmarks/external_results.py                       # the whole table (about an hour on 2 CPU cores)
    python benchmarks/external_results.py --quick               # 8 images per set, 3 steps, no scores: a check
    python benchmarks/external_results.py -- trainer.precision=32-true   # extra run_boost.py settings

Pools the 27 sample sets of ``shared/data/external-samples`` into the family groups of
``external_groups.py`` and boosts every group with ``run_boost.py`` (one Hydra multirun per
variant; every run writes its own ``metrics.json``, samples and figures):

    eps        L2 eps 1 and 2, 30 steps: the main result (eps 1.0) and the start of the eps sweep
    confident  confidence-aware boosting: eps 2, 4, 1 with attack.stop_at 0.8 and 0.95 (an image
               stops moving once the classifier gives its target that probability)
    eps_more   the rest of the eps sweep: 4, 0.5, 0.25, 3, 0.1
    debias     predicted labels without and with balanced debiasing (mean is the main run's)
    steps7     7 steps instead of 30
    linf       L-inf at the perturbation of the L2 eps 1.0 run (the paper's Fig. 4 protocol:
               eps = the 70th percentile of its per-pixel changes), one per group
    small      the earlier, weaker shipped classifier (classifier=cifar10_l2_small)

``--only eps,confident`` runs the named variants alone. Within a variant the settings are
the outer loop, so a stopped run has every group at its first settings. Then it writes ``results.md`` and
``results.json`` (KID and FID-infinity with their 95% bootstrap intervals) to
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
SWEEP_EPS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0)
FIRST_EPS = (1.0, 2.0)                   # run first (variant eps)
MORE_EPS = (4.0, 0.5, 0.25, 3.0, 0.1)    # the rest of SWEEP_EPS, after the confident runs (variant eps_more)
CONFIDENT_EPS = (2.0, 4.0, 1.0)
STOP_AT = (0.8, 0.95)
VARIANTS = ("eps", "confident", "eps_more", "debias", "steps7", "small", "linf")
# The authors' published CIFAR-10 runs (FID-50k against the 50 000 training images, MadryLab's
# robust ResNet-50), from the logs in their notebooks (royg27/BIGRoC,
# CIFAR10/BIGRoC_Unconditional_boosting.ipynb: the first run of each table; their eps is in
# [-1, 1] units, half of it ours): (generator, our group, their eps in our units, FID, boosted FID).
PUBLISHED = (("WGAN-GP (torch-mimicry)", "gan_wasserstein", 2.5, 22.43, 16.19),
             ("SNGAN (torch-mimicry)", "gan_spectral", 2.5, 17.20, 13.18),
             ("InfoMax-GAN (torch-mimicry)", "gan_spectral", 1.5, 15.44, 11.36))
SET_BY_VARIANTS = ("epsilon", "attack", "attack.stop_at", "debias", "steps", "classifier")
LINF_PERCENTILE = 70


def _run_boost(sweep_dir: Path, paths: list[Path], overrides: list[str], extra: list[str],
               progress: Progress) -> None:
    """One multirun of run_boost.py over the variant's ``overrides`` and ``paths``, the first
    override the outermost loop (a stopped table has every group at the first settings).
    ``progress`` counts the runs it finishes."""
    if _finished(sweep_dir) >= len(paths) * _jobs_per_path(overrides):
        return
    cmd = [sys.executable, str(REPO / "run_boost.py"), "-m", *overrides, "generator=samples",
           "generator.path=" + ",".join(str(p) for p in paths), "num_samples=all", "logger=none",
           f"hydra.sweep.dir={sweep_dir}", *extra]
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


def _joined(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def run_all(groups: list[Group], paths: dict[str, Path], out: Path, extra: list[str], quick: bool,
            only: tuple[str, ...] = VARIANTS) -> None:
    """The multiruns of the variants in ``only``; a progress line (runs done of those left, time
    left) after each."""
    everything = [paths[g.name] for g in groups]
    unconditional = [paths[g.name] for g in groups if not g.conditional]
    first, confident, stops = ([MAIN_EPS], [MAIN_EPS], [0.9]) if quick else (FIRST_EPS, CONFIDENT_EPS, STOP_AT)
    more = [] if quick else list(MORE_EPS)
    variants = [(out / "eps", everything, ["epsilon=" + _joined(first)]),
                (out / "confident", everything, ["epsilon=" + _joined(confident), "attack.stop_at=" + _joined(stops)]),
                (out / "eps_more", everything, ["epsilon=" + _joined(more)]),
                (out / "debias", unconditional, [f"epsilon={MAIN_EPS}", "debias=none,balanced"]),
                (out / "steps7", everything, [f"epsilon={MAIN_EPS}", "steps=7"]),
                (out / "small", everything, [f"epsilon={MAIN_EPS}", "classifier=cifar10_l2_small"])]
    variants = [v for v in variants if v[0].name in only and "epsilon=" != v[2][0]]
    linf_left = max(len(groups) - sum(_finished(d) for d in out.glob("linf_*")), 0) if "linf" in only else 0
    total = sum(_to_run(*v) for v in variants) + linf_left
    with Progress("external results", total, unit="runs") as progress:
        for sweep_dir, variant_paths, overrides in variants:
            _run_boost(sweep_dir, variant_paths, overrides, extra, progress)
        if "linf" not in only:
            return
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


def _fid(m: dict, stage: str, quantity: str = "fid") -> str:
    return f"{m[f'{stage}/{quantity}']:.1f}" if f"{stage}/{quantity}" in m else "-"


def _fid_inf_change(m: dict) -> str:
    lo, hi = m.get("boosted/fid_inf_change_ci_low"), m.get("boosted/fid_inf_change_ci_high")
    if "boosted/fid_inf" not in m:
        return "-"
    text = f"{m['boosted/fid_inf'] - m['base/fid_inf']:+.1f}"
    return text + (f" [{lo:+.1f}, {hi:+.1f}]" if lo is not None else "")


def verdict(m: dict | None) -> int:
    """-1: boosting lowered KID (its change's interval below zero), +1: raised it, 0: neither."""
    if m is None or m.get("boosted/kid_change_ci_high") is None:
        return 0
    return -1 if m["boosted/kid_change_ci_high"] < 0 else 1 if m["boosted/kid_change_ci_low"] > 0 else 0


def setting_name(m: dict) -> str:
    stop = m.get("stop_at")
    return f"eps {m['eps']:g}" + (f", stop_at {stop:g}" if stop is not None else "")


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
        sweep = {m["eps"]: m for m in variants.get("eps", []) + variants.get("eps_more", []) if group_of(m) == g.name}
        confident = {(m["eps"], m["stop_at"]): m for m in variants.get("confident", []) if group_of(m) == g.name}
        every = [m for m in [*sweep.values(), *confident.values()] if "boosted/kid_mean" in m]
        scored = {e: m for e, m in sweep.items() if "boosted/fid" in m}
        table[g.name] = {
            "title": g.title, "images": main.get("images"), "jpeg": g.jpeg, "conditional": g.conditional,
            "main": main, "sweep": sweep, "confident": {f"{e:g}/{s:g}": m for (e, s), m in confident.items()},
            "best_eps_fid": min(scored, key=lambda e: scored[e]["boosted/fid"]) if scored else None,
            "best_eps_kid": min(scored, key=lambda e: scored[e]["boosted/kid_mean"]) if scored else None,
            "best_setting": setting_name(min(every, key=lambda m: m["boosted/kid_mean"])) if every else None,
            "debias": {d: _pick(variants.get("debias", []), g.name, debias=d) for d in ("none", "balanced")},
            "steps7": _pick(variants.get("steps7", []), g.name),
            "small": _pick(variants.get("small", []), g.name),
            "linf": _pick(linf, g.name),
        }
    return table


def settings_across_groups(table: dict) -> list[dict]:
    """Per setting (plain eps, and eps with stop_at): the groups it makes better and worse (by
    KID's change interval), and the mean relative change of FID-infinity."""
    settings: dict[str, list[dict]] = {}
    for r in table.values():
        for m in [*r["sweep"].values(), *r["confident"].values()]:
            settings.setdefault(setting_name(m), []).append(m)
    out = []
    for name, rows in settings.items():
        rel = [(m["boosted/fid_inf"] - m["base/fid_inf"]) / m["base/fid_inf"] for m in rows if "boosted/fid_inf" in m]
        out.append({"setting": name, "eps": rows[0]["eps"], "stop_at": rows[0].get("stop_at"),
                    "better": sorted(group_of(m) for m in rows if verdict(m) < 0),
                    "worse": sorted(group_of(m) for m in rows if verdict(m) > 0),
                    "fid_inf_rel": sum(rel) / len(rel) if rel else None})
    return sorted(out, key=lambda s: (s["stop_at"] is not None, s["stop_at"] or 0, s["eps"]))


def reference_text(m: dict) -> str:
    return (f"{m.get('reference')} (first {m.get('reference_samples')} images of the JPEG-rebuilt CIFAR-10), "
            f"{m.get('inception')}; classifier {m.get('classifier')}, boosting precision {m.get('precision')}")


def _mark(m: dict) -> str:
    return {-1: " (lower)", 1: " (higher)", 0: ""}[verdict(m)]


def markdown(table: dict, reference: str) -> str:
    lines = [f"Reference: {reference}. KID x 10^3 with its 95% paired-bootstrap interval; the change interval "
             "below zero means boosting lowered KID. FID-inf: FID extrapolated to infinitely many images "
             "(Chong & Forsyth 2020), with its 95% bootstrap interval. L2, 30 steps of eps/30, eps 1.0 unless said.",
             ""]
    head = ("| group | images | FID base -> boosted | FID-inf base -> boosted | FID-inf change | KID base | "
            "KID boosted | KID change | p(target) | best eps (FID / KID) | best setting (KID) |")
    lines += ["## Main result (eps 1.0)", "", head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for jpeg in (False, True):
        for name, r in table.items():
            if r["jpeg"] != jpeg:
                continue
            m = r["main"]
            p = f"{m['base/target_prob']:.2f} -> {m['boosted/target_prob']:.2f}"
            lines.append(f"| {name}{' (JPEG)' if jpeg else ''} | {r['images']} | {_fid(m, 'base')} -> "
                         f"{_fid(m, 'boosted')} | {_fid(m, 'base', 'fid_inf')} -> {_fid(m, 'boosted', 'fid_inf')} | "
                         f"{_fid_inf_change(m)} | {_kid(m, 'base')} | {_kid(m, 'boosted')} | {_change(m)} | {p} | "
                         f"{r['best_eps_fid']} / {r['best_eps_kid']} | {r['best_setting']} |")
    lines += ["", "## eps sweep (boosted FID-inf / KID x 10^3; lower or higher: KID's change interval excludes 0)",
              "", "| group | base | " + " | ".join(f"eps {e:g}" for e in SWEEP_EPS) + " |",
              "|---|---|" + "---|" * len(SWEEP_EPS)]

    def pair(m: dict | None, stage: str = "boosted") -> str:
        if m is None or f"{stage}/kid_mean" not in m:
            return "-"
        return f"{_fid(m, stage, 'fid_inf')} / {1e3 * m[f'{stage}/kid_mean']:.1f}" + (_mark(m) if stage == "boosted" else "")

    for name, r in table.items():
        lines.append(f"| {name} | {pair(r['main'], 'base')} | " + " | ".join(pair(r["sweep"].get(e)) for e in SWEEP_EPS)
                     + " |")
    if any(r["confident"] for r in table.values()):
        keys_ = sorted({k for r in table.values() for k in r["confident"]}, key=lambda k: tuple(map(float, k.split("/"))))
        lines += ["", "## Confidence-aware boosting (KID change x 10^3 [95%]; FID-inf change)", "",
                  "| group | " + " | ".join("eps {}, stop_at {}".format(*k.split("/")) for k in keys_) + " |",
                  "|---|" + "---|" * len(keys_)]
        for name, r in table.items():
            cells = [f"{_change(m)}; {_fid_inf_change(m)}" if (m := r["confident"].get(k)) else "-" for k in keys_]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    across = settings_across_groups(table)
    lines += ["", "## Every setting across the groups (by KID's change interval)", "",
              "| setting | groups better | groups worse | mean relative FID-inf change |", "|---|---|---|---|"]
    for s in across:
        rel = f"{100 * s['fid_inf_rel']:+.1f}%" if s["fid_inf_rel"] is not None else "-"
        lines.append(f"| {s['setting']} | {', '.join(s['better']) or 'none'} | {', '.join(s['worse']) or 'none'} | {rel} |")
    harmless = [s["setting"] for s in across if s["better"] and not s["worse"]]
    lines += ["", "Settings that make some group better and none worse: " + (", ".join(harmless) or "none") + "."]
    lines += _against_the_paper(table)
    if any(r["linf"] or r["steps7"] or r["small"] for r in table.values()):
        lines += _ablations(table)
    lines += ["", "Label histograms of predicted labels (main run, debias=mean):", ""]
    for name, r in table.items():
        lines.append(f"- {name}: {r['main'].get('labels/histogram')}")
    return "\n".join(lines) + "\n"


def _relative_fid_inf(m: dict | None) -> str:
    if m is None or "boosted/fid_inf" not in m:
        return "-"
    return f"{100 * (m['boosted/fid_inf'] - m['base/fid_inf']) / m['base/fid_inf']:+.1f}%"


def _against_the_paper(table: dict) -> list[str]:
    """Each published generator's relative FID-50k change beside our family's relative FID-inf
    change at the two swept eps around theirs."""
    lines = ["", "## Against the authors' runs (relative change of FID-50k there, of FID-inf here)", "",
             "| published generator | their eps (our units) | their FID-50k | our group | ours at eps below / above |",
             "|---|---|---|---|---|"]
    for name, group, eps, base, boosted in PUBLISHED:
        r = table.get(group)
        if r is None:
            continue
        below = max((e for e in r["sweep"] if e <= eps), default=None)
        above = min((e for e in r["sweep"] if e >= eps), default=None)
        ours = " / ".join(f"{_relative_fid_inf(r['sweep'].get(e))} (eps {e:g})" for e in (below, above) if e is not None)
        lines.append(f"| {name} | {eps:g} | {base:.2f} -> {boosted:.2f} ({100 * (boosted - base) / base:+.1f}%) | "
                     f"{group} | {ours} |")
    return lines


def _ablations(table: dict) -> list[str]:
    lines = ["", "## Ablations (boosted KID x 10^3 and its change; FID in brackets)", "",
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
    return lines


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
    parser.add_argument("--only", default=",".join(VARIANTS),
                        help=f"the variants to run, comma-separated (default: all of {','.join(VARIANTS)})")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.quick:  # scores nothing, so the settings of the scores have nothing to set
        unscored = [e for e in extra if not e.startswith("metrics.")]
        extra = ["steps=3", "metrics=none", "calibration.samples=16", *unscored]
    out = (args.out or REPO / "outputs" / ("external_quick" if args.quick else "external")).resolve()
    start = time.perf_counter()
    paths = {g.name: write_group(g, args.samples, out / "groups", 8 if args.quick else None) for g in GROUPS}
    only = tuple(v for v in args.only.split(",") if v)
    if not only or set(only) - set(VARIANTS):
        parser.error(f"--only takes variants of {','.join(VARIANTS)}, got {args.only!r}")
    clash = [e for e in extra if e.split("=", 1)[0].lstrip("+~") in SET_BY_VARIANTS]
    if clash:
        parser.error(f"{' '.join(clash)}: the variants set these themselves; leave them out after --")
    run_all(list(GROUPS), paths, out, extra, args.quick, only)
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
