"""run_boost.py through its command line: the contract scripts and checks rely on."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cli import BOOST_FAST, entry

ROOT = Path(__file__).resolve().parents[1]
FAST = list(BOOST_FAST)


def boost(args: list[str], cwd: Path, cache: Path, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    return entry("run_boost.py", args, cwd, env={"BIGROC_CACHE": str(cache)}, **popen)


def score(target: Path, cifar_root: Path, out: Path, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    """``score.py`` on ``target`` against the reference that :data:`FAST` boosts score against."""
    reference = [a for a in FAST if a.startswith("metrics.")]
    return entry("score.py", [f"samples={target}", f"data.root={cifar_root}", *reference, f"hydra.run.dir={out}"],
                 cwd, env={"BIGROC_CACHE": str(cache)})


def contract(npz: Path, cifar_root: Path, out: Path, *extra: str) -> list[str]:
    return ["generator=samples", f"generator.path={npz}", "classifier.checkpoint=shipped:classifier_cifar10_l2",
            f"data.root={cifar_root}", "epsilon=0.5", *FAST, f"hydra.run.dir={out}", *extra]


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return f["arr_0"], f["arr_1"]


def test_contract_scores_and_saves_both_versions(external_samples, cifar_root, score_cache, tmp_path):
    npz, out = external_samples / "steingan_cond_2017.npz", tmp_path / "run"  # has arr_1 labels
    done = boost(contract(npz, cifar_root, out, "logger=none"), tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("base/fid", "boosted/fid", "base/sfid", "boosted/sfid", "base/kid_mean", "boosted/precision",
                "boosted/recall"):
        assert np.isfinite(metrics[key]), key
    assert metrics["eps"] == 0.5 and metrics["steps"] == 3 and metrics["num_samples"] == 8
    assert metrics["generator"] == "samples" and metrics["inception"].startswith("TF Inception-v3")
    assert metrics["inception_score"].startswith("unavailable")
    assert metrics["boosted/target_prob"] > metrics["base/target_prob"]
    base, y = read_npz(out / "samples_base.npz")
    boosted, y2 = read_npz(out / "samples_boosted.npz")
    src, src_y = read_npz(npz)
    assert base.shape == boosted.shape == (8, 32, 32, 3) and base.dtype == boosted.dtype == np.uint8
    assert np.array_equal(base, src[:8]) and np.array_equal(y, src_y[:8]) and np.array_equal(y2, y)
    delta = (boosted.astype(float) - base.astype(float)) / 255
    norms = np.sqrt((delta ** 2).reshape(8, -1).sum(1))
    assert norms.max() <= 0.5 + 8 * np.sqrt(3 * 32 * 32) / 510 and norms.mean() > 0.2  # + rounding
    assert (out / "grid_before_after.png").exists() and (out / "label_histograms.png").exists()
    assert not (out / ".chunks").exists()


def test_killed_run_resumes_to_identical_outputs(external_samples, cifar_root, score_cache, tmp_path):
    npz = external_samples / "gc_sngan_res.npz"  # no labels: predicted with debiasing
    slow = ["steps=5", "num_samples=12", "logger=none"]
    whole = boost(contract(npz, cifar_root, tmp_path / "whole", *slow), tmp_path, score_cache)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    proc = boost(contract(npz, cifar_root, out, *slow), tmp_path, score_cache,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((out / ".chunks" / "seed0").glob("*.npz")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list((out / ".chunks" / "seed0").glob("*.npz"))
    assert 1 <= len(left) < 3 and not (out / "metrics.json").exists()

    again = boost(contract(npz, cifar_root, out, *slow), tmp_path, score_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "whole", out))
    assert a == b
    for name in ("samples_base.npz", "samples_boosted.npz"):
        for x, y in zip(read_npz(tmp_path / "whole" / name), read_npz(out / name)):
            assert np.array_equal(x, y)
    # The same command once more finds the finished run and leaves it alone.
    stamp = (out / "metrics.json").stat().st_mtime_ns
    third = boost(contract(npz, cifar_root, out, *slow), tmp_path, score_cache)
    assert third.returncode == 0 and "nothing to do" in third.stdout
    assert (out / "metrics.json").stat().st_mtime_ns == stamp


def test_two_process_ddp_gives_the_metrics_of_one(external_samples, cifar_root, score_cache, tmp_path):
    npz, runs = external_samples / "gc_sngan_res.npz", {}
    for name, trainer in (("one", "trainer=cpu"), ("two", "trainer=ddp_cpu")):  # 9 images: ranks own 4 and 5
        done = boost(contract(npz, cifar_root, tmp_path / name, trainer, "num_samples=9", "logger=none"),
                     tmp_path, score_cache)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    one, two = runs["one"], runs["two"]
    # The ranks boost other batch shapes than one process, so other kernels: the floats agree up to
    # rounding (~1e-6 after three steps), which quantisation turns into one level on a few pixels.
    for name in ("samples_base.npz", "samples_boosted.npz"):
        (x, y), (x2, y2) = read_npz(tmp_path / "one" / name), read_npz(tmp_path / "two" / name)
        assert np.array_equal(y, y2)
        levels = np.abs(x.astype(int) - x2.astype(int))
        assert levels.max() <= 1 and (levels > 0).mean() <= 1e-3, name
    # At ~10 images one such level moves FID by ~4e-5 of itself and KID (a difference of kernel means
    # near zero) by ~1e-3 of itself, host-dependently. So the scores are held to one process scoring
    # the same images (score.py), rounding only; KID's bootstrap interval (not in score.py) to its
    # width; and everything else to the one-process run.
    done = score(tmp_path / "two", cifar_root, tmp_path / "rescored", tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    rescored = json.loads((tmp_path / "rescored" / "scores.json").read_text())
    assert "boosted/fid" in rescored and "boosted/kid_mean" in rescored
    for key, value in one.items():
        if key in rescored and isinstance(value, float):
            assert two[key] == pytest.approx(rescored[key], rel=1e-4, abs=1e-6), key
        elif key.endswith(("_ci_low", "_ci_high")):
            stem = key.rsplit("_ci_", 1)[0]
            assert abs(two[key] - value) <= 1e-2 * (one[stem + "_ci_high"] - one[stem + "_ci_low"]), key
        elif isinstance(value, float):
            assert two[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        else:
            assert two[key] == value, key


def test_eps_sweep_writes_a_summary_and_one_wandb_run_per_job(external_samples, cifar_root, score_cache,
                                                                tmp_path):
    npz, sweep = external_samples / "gc_sngan_res.npz", tmp_path / "sweep"
    args = [a for a in contract(npz, cifar_root, tmp_path / "unused") if not a.startswith(("epsilon", "hydra."))]
    done = boost(["-m", *args, "epsilon=0.25,1.0", f"hydra.sweep.dir={sweep}"], tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(json.loads(p.read_text())["eps"] for p in sweep.glob("*/metrics.json")) == [0.25, 1.0]
    assert len(list(sweep.glob("*/wandb/offline-run-*"))) == 2
    assert {"summary.csv", "summary.md", "summary.png"} <= {p.name for p in sweep.iterdir()}
    assert "best eps for samples" in (sweep / "summary.md").read_text()


def test_num_samples_all_boosts_every_image_of_the_file(external_samples, cifar_root, score_cache, tmp_path):
    npz, out = external_samples / "gc_sngan_res.npz", tmp_path / "run"  # 64 images
    args = [a for a in contract(npz, cifar_root, out, "logger=none", "metrics=none")
            if not a.startswith(("num_samples", "metrics."))]
    done = boost([*args, "num_samples=all", "batch_size=32", "steps=1"], tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_samples"] == "all" and metrics["images"] == 64
    assert read_npz(out / "samples_boosted.npz")[0].shape == (64, 32, 32, 3)
    latent = boost(["num_samples=all", "metrics=none", "logger=none", f"hydra.run.dir={tmp_path / 'vae'}"],
                   tmp_path, score_cache)
    assert latent.returncode == 2 and "num_samples=all needs a source of finitely many images" in latent.stderr
    assert not (tmp_path / "vae").exists() or not any((tmp_path / "vae").iterdir())


def test_submitit_local_launcher_runs_a_job(external_samples, cifar_root, score_cache, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install '.[slurm]'")
    npz, sweep = external_samples / "gc_sngan_res.npz", tmp_path / "sweep"
    args = [a for a in contract(npz, cifar_root, tmp_path / "unused", "logger=none", "metrics=none")
            if not a.startswith(("hydra.", "metrics."))]
    done = boost(["-m", "hydra/launcher=submitit_local", *args, f"hydra.sweep.dir={sweep}",
                  "hydra.launcher.timeout_min=10"], tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    (job,) = sweep.glob("*/metrics.json")
    metrics = json.loads(job.read_text())
    assert metrics["scored"].startswith("metrics=none") and "base/fid" not in metrics
    assert read_npz(job.parent / "samples_boosted.npz")[0].shape == (8, 32, 32, 3)


def test_a_run_saved_without_data_is_scored_by_the_same_command_later(external_samples, cifar_root,
                                                                       score_cache, tmp_path):
    npz, out = external_samples / "gc_sngan_res.npz", tmp_path / "run"
    args = [a if not a.startswith("data.root=") else "data.root=data"
            for a in contract(npz, cifar_root, out, "logger=none")]
    first = boost(args, tmp_path, score_cache)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "not scored" in first.stdout and "test_batch is missing" in first.stdout
    assert "base/fid" not in json.loads((out / "metrics.json").read_text())
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("samples_*.npz")}
    (tmp_path / "data").symlink_to(cifar_root)
    again = boost(args, tmp_path, score_cache)
    assert again.returncode == 0 and "scored the saved samples" in again.stdout, again.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["base/fid"]) and np.isfinite(metrics["boosted/kid_mean"]) and "scored" not in metrics
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("samples_*.npz")} == stamps  # no second boost
    assert "nothing to do" in boost(args, tmp_path, score_cache).stdout


def test_score_command_scores_an_npz_and_a_finished_run(external_samples, cifar_root, score_cache, tmp_path):
    npz, run_dir = external_samples / "gc_sngan_res.npz", tmp_path / "run"
    unscored = [a for a in contract(npz, cifar_root, run_dir, "logger=none") if not a.startswith("metrics.")]
    assert boost([*unscored, "metrics=none"], tmp_path, score_cache).returncode == 0
    for target, keys in ((run_dir, ("base/fid", "boosted/fid", "boosted/sfid")), (npz, ("gc_sngan_res/fid",))):
        out = tmp_path / f"score-{target.name}"
        done = score(target, cifar_root, out, tmp_path, score_cache)
        assert done.returncode == 0, done.stderr[-3000:]
        scores = json.loads((out / "scores.json").read_text())
        assert all(np.isfinite(scores[k]) for k in keys), scores
    missing = score(tmp_path / "nope.npz", cifar_root, tmp_path / "score-nope", tmp_path, score_cache)
    assert missing.returncode == 2 and "nope.npz does not exist" in missing.stderr
