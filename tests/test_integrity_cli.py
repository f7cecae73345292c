"""The entries as a hostile or careless user meets them: no stale or mixed results, no lost
samples, a SIGTERM that stops, run directories that are one run's, bounded settings.

Every refusal is checked for its exit status (2), its one line naming the input and the fix,
and the disk: a refused run leaves no directory behind and changes nothing already there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from cli import entry
from files import tree_hashes
from test_run_boost_cli import boost
from test_run_integrity_cli import QUICK, assert_refused, run, samples


def png_folder(folder, count=8, seed=0):
    """``count`` 32x32 PNGs stored without compression: the same size whatever the pixels."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png",
                                                                                 compress_level=0)
    return folder


def rewrite_in_place(path, seed):
    """New pixels in the same file: same size, inode, and (restored) modification times."""
    info, folder = path.stat(), path.parent.stat()
    data = path.read_bytes()
    png_folder(path.parent / ".scratch", count=1, seed=seed)
    new = (path.parent / ".scratch" / "000.png").read_bytes()
    assert len(new) == len(data) and new != data
    with open(path, "r+b") as f:  # in place: the inode stays
        f.write(new)
    (path.parent / ".scratch" / "000.png").unlink()
    (path.parent / ".scratch").rmdir()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (info.st_size, info.st_mtime_ns, info.st_ino)


def folder_run(tmp_path, cache, folder, *args, **popen):
    return boost(["generator=samples", f"generator.path={folder}", *QUICK, *args], tmp_path, cache, **popen)


# -- 1. identity: the content of every input, and every setting that changes what is written ----------

def test_images_rewritten_in_place_are_another_run(tmp_path, score_cache):
    folder = png_folder(tmp_path / "pngs")
    out = tmp_path / "run"
    assert folder_run(tmp_path, score_cache, folder, f"hydra.run.dir={out}").returncode == 0
    first = folder_run(tmp_path, score_cache, folder)  # the default directory, named by the identity
    assert first.returncode == 0
    rewrite_in_place(folder / "003.png", seed=7)
    before = tree_hashes(out)
    assert_refused(folder_run(tmp_path, score_cache, folder, f"hydra.run.dir={out}"),
                   "finished run with other settings", "hydra.run.dir")
    assert tree_hashes(out) == before
    again = folder_run(tmp_path, score_cache, folder)
    assert again.returncode == 0 and "nothing to do" not in again.stdout  # a new run, not the stale one
    assert len(list((tmp_path / "outputs" / "boost" / "samples").iterdir())) == 2


def test_a_resumed_run_never_mixes_old_and_new_images(tmp_path, score_cache):
    folder = png_folder(tmp_path / "pngs")
    out = tmp_path / "run"
    proc = folder_run(tmp_path, score_cache, folder, "steps=400", f"hydra.run.dir={out}", stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob(".chunks/seed0/*.npz")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()  # SIGKILL after the first of two batches: a run to resume
    proc.wait()
    assert len(list(out.glob(".chunks/seed0/*.npz"))) == 1 and not (out / "metrics.json").exists()
    rewrite_in_place(folder / "000.png", seed=9)
    before = tree_hashes(out)
    assert_refused(folder_run(tmp_path, score_cache, folder, f"hydra.run.dir={out}"), "other settings")
    assert tree_hashes(out) == before


@pytest.mark.parametrize("value", ["-1", "0", "abc"])
def test_a_shard_size_that_loses_samples_is_refused_before_anything(tmp_path, score_cache, value):
    out = tmp_path / "run"
    assert_refused(run(tmp_path, score_cache, f"samples.shard_size={value}", out=out), "samples.shard_size")
    assert not out.exists()


def test_the_shard_size_is_part_of_the_identity(tmp_path, score_cache):
    out = tmp_path / "run"
    assert run(tmp_path, score_cache, "samples.shard_size=4", out=out).returncode == 0
    assert sorted(p.name for p in out.glob("samples_*.npz")) == [
        "samples_base_000.npz", "samples_base_001.npz", "samples_boosted_000.npz", "samples_boosted_001.npz"]
    assert json.loads((out / "metrics.json").read_text())["shard_size"] == 4
    assert_refused(run(tmp_path, score_cache, out=out), "other settings", "shard_size")


# -- 2. bounds, and checks before the first write ---------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["epsilon=1e30"], ["epsilon=1e+30 is larger than the L2 diameter", "epsilon <= 55.43"]),
    (["attack=linf", "epsilon=2"], ["LINF diameter", "epsilon <= 1"]),
    (["steps=100000"], ["steps must be an integer in [1, 10000]"]),
    (["calibration.samples=1000000000000000000000000000000"], ["calibration.samples must be in [1, 1000000]"]),
    (["seeds=[0,0]"], ["repeats [0]", "distinct seeds"]),
    (["trainer.precision=16-mixed"], ["trainer.precision=16-mixed", "bf16-mixed"]),
    (["grid_size=abc"], ["grid_size must be an integer"]),
])
def test_settings_that_make_no_sense_are_refused_with_their_bound(tmp_path, score_cache, args, needles):
    out = tmp_path / "run"
    assert_refused(run(tmp_path, score_cache, *args, out=out), *needles)
    assert not out.exists()


def test_a_refused_run_leaves_no_directory_in_the_default_place(tmp_path, score_cache):
    assert_refused(run(tmp_path, score_cache, "seeds=[1,1]"), "distinct seeds")
    assert not (tmp_path / "outputs").exists()


def test_undecodable_images_are_found_before_anything_is_written(tmp_path, score_cache):
    folder = png_folder(tmp_path / "pngs")
    data = (folder / "005.png").read_bytes()
    (folder / "005.png").write_bytes(data[: len(data) // 2])  # cut mid-stream
    out = tmp_path / "run"
    assert_refused(folder_run(tmp_path, score_cache, folder, f"hydra.run.dir={out}"), "005.png")
    assert not out.exists()


# -- 3. SIGTERM stops within seconds, wherever the run is -------------------------------------------------

@pytest.mark.parametrize("phase, args", [
    ("the PGD loop", ["generator=samples", "steps=10000", "num_samples=4", "calibration.samples=16"]),
    ("calibration", ["steps=2", "calibration.samples=1000000"]),  # the shipped VAE makes them all
])
def test_sigterm_stops_within_seconds_and_exits_143(tmp_path, score_cache, phase, args):
    out = tmp_path / "run"
    proc = run_popen(tmp_path, score_cache, out, *args)
    settings = out / ".chunks" / "settings.json"  # written just before the first batch or calibration
    deadline = time.monotonic() + 120
    while not settings.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # well inside the phase: it takes minutes
    assert proc.poll() is None, f"the run ended before SIGTERM ({phase})"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 15, f"{phase}: took {time.monotonic() - sent:.0f} s to stop"
    assert proc.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert not (out / "metrics.json").exists()


def run_popen(tmp_path, cache, out, *args):
    path = [f"generator.path={samples(tmp_path)}"] if "generator=samples" in args else []
    quick = [a for a in QUICK if not a.startswith(("steps=", "calibration.samples="))]
    return boost([*args, *path, *quick, f"hydra.run.dir={out}"], tmp_path, cache, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)


# -- 4. a run directory is this run's or empty --------------------------------------------------------------

def test_a_directory_with_a_users_files_is_refused_untouched(tmp_path, score_cache):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / ".draft.txt.tmp999999999").write_text("named like a temporary, still mine")
    before = tree_hashes(out)
    assert_refused(run(tmp_path, score_cache, out=out), "notes.txt", "does not write", "hydra.run.dir")
    assert tree_hashes(out) == before


def test_the_input_folder_is_not_a_run_directory(tmp_path, score_cache):
    folder = png_folder(tmp_path / "pngs")
    before = tree_hashes(folder)
    assert_refused(folder_run(tmp_path, score_cache, folder, f"hydra.run.dir={folder}"), "000.png")
    assert tree_hashes(folder) == before


def test_another_entrys_run_keeps_its_record(tmp_path, score_cache):
    out = tmp_path / "trained"
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    name: train_robust\n")
    (out / "checkpoints").mkdir()
    before = tree_hashes(out)
    assert_refused(run(tmp_path, score_cache, out=out), "train_robust")
    assert tree_hashes(out) == before


@pytest.mark.parametrize("make", ["file", "hydra-file"])
def test_a_run_dir_that_is_a_file_or_holds_a_hydra_file(tmp_path, score_cache, make):
    target = tmp_path / "run"
    if make == "file":
        target.write_text("a file")
    else:
        target.mkdir()
        (target / ".hydra").write_text("not Hydra's folder")
    assert_refused(run(tmp_path, score_cache, out=target), "hydra.run.dir")
    assert (target.read_text() if make == "file" else (target / ".hydra").read_text()) in ("a file",
                                                                                        "not Hydra's folder")


def test_score_and_interpolate_never_replace_another_runs_results(tmp_path, cifar_root):
    out = tmp_path / "scored"
    npz = samples(tmp_path)
    common = [f"data.root={cifar_root}", "metrics.ref_split=test", "metrics.ref_samples=16",
              "metrics.kid_subset_size=4", f"metrics.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={out}"]
    first = entry("score.py", [f"samples={npz}", *common], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = tree_hashes(out)
    again = entry("score.py", [f"samples={npz}", *common], tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert_refused(entry("score.py", [f"samples={npz}", *common, "metrics.pr_k=5"], tmp_path),
                   "other settings or inputs")
    assert tree_hashes(out) == before
    big = samples(tmp_path, (4, 64, 64, 3), name="big.npz")
    assert_refused(entry("score.py", [f"samples={big}", *common[:-1], f"hydra.run.dir={tmp_path / 'b'}"], tmp_path),
                   "64x64", "metrics=reference_npz")
    assert not (tmp_path / "b").exists()


def test_a_metrics_file_that_is_not_an_object_is_one_line(tmp_path, score_cache):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("[]")
    assert_refused(run(tmp_path, score_cache, out=out), "metrics.json: holds a JSON list")
    assert (out / "metrics.json").read_text() == "[]"
