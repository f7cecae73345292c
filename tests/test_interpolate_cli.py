"""interpolate.py through its command line: the files it promises, and its refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bigroc.models import build_classifier, save_classifier
from cli import entry

ROOT = Path(__file__).resolve().parents[1]
FAST = ["steps=8", "classifier.checkpoint=shipped:classifier_cifar10_l2"]
# Quantising a frame to uint8 moves it by at most half a level per value.
ROUNDING = np.sqrt(3 * 32 * 32) / 510


def interpolate_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # Tiny networks: one thread is as fast as two and does not stall on a busy machine.
    return entry("interpolate.py", args, cwd, env={"OMP_NUM_THREADS": "1"})


def write_png(path: Path, seed: int, size: tuple[int, int] = (32, 32)) -> Path:
    """Blobs of colour: low-resolution noise, enlarged."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(size, Image.BILINEAR).save(path)
    return path


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def pngs(tmp_path) -> tuple[Path, Path]:
    return write_png(tmp_path / "source.png", 1), write_png(tmp_path / "target.png", 2)


def test_contract_one_pair_frames_strip_metrics_and_wandb(pngs, tmp_path):
    out = tmp_path / "run"
    done = interpolate_cli([*FAST, f"source={pngs[0]}", f"target={pngs[1]}", "c=[0.25,0.5,1.0]",
                            f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out / "interpolation.npz") as f:
        frames, c, source, target = f["arr_0"], f["c"], f["source"], f["target"]
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8 and list(c) == [0.25, 0.5, 1.0]
    assert np.array_equal(source, read_rgb(pngs[0])) and np.array_equal(target, read_rgb(pngs[1]))
    radius = np.linalg.norm((target.astype(float) - source) / 255)
    moved = [np.linalg.norm((frame.astype(float) - source) / 255) for frame in frames]
    assert all(m <= r * radius + ROUNDING for m, r in zip(moved, c)) and moved[-1] > 0.5 * radius
    strip = read_rgb(out / "interpolation.png").mean(axis=2)  # source, 3 frames, target, titled with c
    assert strip.shape[1] > 3 * strip.shape[0] and strip.std() > 20
    metrics = json.loads((out / "metrics.json").read_text())
    (pair,) = metrics["pairs"]
    distances = pair["robust"]["feature_distance"]
    assert pair["robust"]["feature_distance_at_source"] > distances[0] > distances[1] > distances[2]
    assert pair["eps"] == pytest.approx([r * pair["pixel_distance"] for r in c])
    assert metrics["robust/relative_feature_distance@c=1"] < 0.5 and metrics["steps"] == 8
    assert len(list(out.glob("wandb/offline-run-*"))) == 1
    assert not (out / "comparison.png").exists() and not (out / "pair000").exists()


def test_cifar_pairs_with_a_standard_classifier_beside_the_robust_one(cifar_root, tmp_path):
    torch.manual_seed(0)
    standard = tmp_path / "standard.safetensors"
    save_classifier(build_classifier("resnet18", width=0.125).eval(), standard, meta={})
    out = tmp_path / "run"
    done = interpolate_cli([*FAST, "pairs=[[3,10],[7,42]]", f"data.root={cifar_root}", "c=[0,0.5,1]",
                            f"compare.checkpoint={standard}", "compare.width=0.125", "logger=csv",
                            "batch_size=4", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from bigroc.data.cifar10 import read_cifar10

    x, _ = read_cifar10(cifar_root, "test")
    for i, (s, t) in enumerate([(3, 10), (7, 42)]):
        folder = out / f"pair{i:03d}"
        for stem in ("interpolation", "interpolation_compare"):
            with np.load(folder / f"{stem}.npz") as f:
                assert f["arr_0"].shape == (3, 32, 32, 3)
                assert np.array_equal(f["arr_0"][0], x[s].permute(1, 2, 0).numpy())  # c = 0
                assert np.array_equal(f["target"], x[t].permute(1, 2, 0).numpy())
            assert (folder / f"{stem}.png").exists()
    assert (out / "comparison.png").stat().st_size > 5000 and (out / "interpolations.png").exists()
    assert not (out / "interpolation.npz").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == ["robust", "standard"] and metrics["compare"] == str(standard)
    assert [p["name"] for p in metrics["pairs"]] == ["#3 airplane -> #10 airplane", "#7 frog -> #42 dog"]
    assert {"robust", "standard"} <= set(metrics["pairs"][0])
    assert "robust/feature_distance@c=0.5" in (out / "csv" / "version_0" / "metrics.csv").read_text()


def written(out: Path) -> list[str]:
    return [p.name for p in out.rglob("*") if ".hydra" not in p.parts and p.name != "interpolate.log"]


BAD = {
    "sizes differ": (["source=source.png", "target=tall.png"],
                     "source.png is 32x32 but target tall.png is 32x40 (width x height); give images of one size"),
    "not an image": (["source=source.png", "target=notes.png"], "notes.png is not an image file PIL can read"),
    "no such file": (["source=source.png", "target=missing.png"], "image file missing.png does not exist"),
    "no target": (["source=source.png"], "give source=IMG and target=IMG"),
    "files and pairs": (["source=source.png", "target=source.png", "pairs=[[1,2]]"], "not both"),
    "c above 1": (["source=source.png", "target=source.png", "c=[0.5,2]"], "every c must be a number in [0, 1]"),
}


@pytest.mark.parametrize("args, message", BAD.values(), ids=BAD.keys())
def test_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, args, message):
    write_png(tmp_path / "source.png", 1)
    write_png(tmp_path / "tall.png", 2, size=(32, 40))
    (tmp_path / "notes.png").write_text("not a picture")
    out = tmp_path / "run"
    done = interpolate_cli([*args, "logger=none", f"hydra.run.dir={out}"], tmp_path)  # paths from cwd
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
    assert written(out) == []


def test_a_crafted_cifar_batch_is_refused(tmp_path):
    from files import crafted_pickle

    marker = tmp_path / "ran"
    crafted_pickle(tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch", marker)
    done = interpolate_cli([*FAST, "pairs=[[3,10]]", f"data.root={tmp_path / 'cifar'}", "logger=none",
                            f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert done.returncode == 2 and "asks to load posix.system" in done.stderr and not marker.exists()
