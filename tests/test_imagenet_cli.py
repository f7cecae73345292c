"""run_boost.py on ImageNet-shaped inputs: an ADM sample batch (128x128, 1000-class labels),
a MadryLab-layout checkpoint of a tiny random ImageNet ResNet, and ADM-style reference
batches (statistics and images, statistics only, images only). The Inception network runs
on 8 + 8 samples and at most 8 reference images per run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bigroc.models import save_madry_checkpoint
from bigroc.metrics.features import SPATIAL
from test_imagenet_boost import LABELS, tiny_imagenet
from test_run_boost_cli import boost, read_npz

N, SIZE, D = 8, 128, 2048
FAST = ["num_samples=8", "batch_size=4", "steps=2", "calibration.samples=8", "metrics.kid_subset_size=4",
        "logger=none", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    labels = np.concatenate([LABELS, [123, 456]])
    np.savez(folder / "admnet_tiny.npz", arr_0=rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8),
             arr_1=labels)
    save_madry_checkpoint(tiny_imagenet(input_size=None), folder / "robust.pt", epoch=90)
    a, b = rng.normal(size=(D, 64)) / 8, rng.normal(size=(SPATIAL, 64)) / 8
    stats = {"mu": rng.normal(size=D) / 4, "sigma": a @ a.T,  # ADM's layout: pool3 and spatial statistics
             "mu_s": rng.normal(size=SPATIAL) / 4, "sigma_s": b @ b.T}
    ref_images = rng.integers(0, 256, (N, 64, 64, 3), dtype=np.uint8)  # ADM's references come at any size
    np.savez(folder / "VIRTUAL_tiny.npz", arr_0=ref_images, **stats)
    np.savez(folder / "stats_only.npz", **stats)
    np.savez(folder / "images_only.npz", arr_0=ref_images)
    return folder


def imagenet_run(files, out, *extra):
    return ["experiment=imagenet128_adm_g", f"generator.path={files / 'admnet_tiny.npz'}",
            f"classifier.checkpoint={files / 'robust.pt'}", "classifier.input_size=64", *FAST,
            f"hydra.run.dir={out}", *extra]


def test_own_labels_against_an_adm_reference(files, score_cache, tmp_path):
    out = tmp_path / "run"
    done = boost(imagenet_run(files, out, f"metrics.path={files / 'VIRTUAL_tiny.npz'}"), tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("base/fid", "boosted/fid", "base/sfid", "boosted/sfid", "base/kid_mean", "boosted/precision",
                "boosted/recall"):
        assert np.isfinite(metrics[key]), key
    assert metrics["eps"] == 1.5 and metrics["step_size"] == pytest.approx(1.5 * 1.5 / 7)
    assert (metrics["labels"], metrics["debias"], metrics["num_samples"]) == ("generator", "none", N)
    assert metrics["reference"].startswith("VIRTUAL_tiny.npz (sha1 ")
    assert metrics["reference_samples"].startswith("precomputed") and metrics["reference_feature_samples"] == N
    assert metrics["boosted/target_prob"] > metrics["base/target_prob"]
    source, labels = read_npz(files / "admnet_tiny.npz")
    base, y = read_npz(out / "samples_base.npz")
    boosted, y2 = read_npz(out / "samples_boosted.npz")
    assert boosted.shape == base.shape == (N, SIZE, SIZE, 3) and boosted.dtype == np.uint8
    assert np.array_equal(base, source) and np.array_equal(y, labels) and np.array_equal(y2, labels)
    norms = np.sqrt((((boosted.astype(float) - base) / 255) ** 2).reshape(N, -1).sum(1))
    assert 0 < norms.max() <= 1.5 + np.sqrt(3 * SIZE * SIZE) / 510  # + rounding to uint8
    assert np.array(metrics["labels/histogram"])[labels].min() >= 1


def test_predicted_labels_against_statistics_only(files, score_cache, tmp_path):
    out = tmp_path / "run"
    done = boost(imagenet_run(files, out, "labels=predicted", f"metrics.path={files / 'stats_only.npz'}"),
                 tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["base/fid"]) and np.isfinite(metrics["boosted/fid"])
    assert not [k for k in metrics if k.startswith(("base/", "boosted/")) and "kid" in k or k.endswith("/recall")]
    assert metrics["kid_precision_recall"] == "unavailable: stats_only.npz holds statistics only (no arr_0 images)"
    assert metrics["labels"] == "predicted" and len(metrics["debias/calibration"]["none"]) == 1000
    _, y = read_npz(out / "samples_boosted.npz")
    assert y.shape == (N,) and np.array_equal(np.bincount(y, minlength=1000), metrics["labels/histogram"])


def test_images_only_reference_gives_every_score(files, score_cache, tmp_path):
    out = tmp_path / "run"
    done = boost(imagenet_run(files, out, f"metrics.path={files / 'images_only.npz'}", "steps=1"),
                 tmp_path, score_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reference_samples"] == N and np.isfinite(metrics["boosted/kid_mean"])
    assert np.isfinite(metrics["base/fid"]) and "kid_precision_recall" not in metrics


def run_error(files, cache, tmp_path, *args):
    out = tmp_path / "run"
    done = boost(imagenet_run(files, out, *args), tmp_path, cache)
    assert done.returncode != 0
    written = [p.name for p in out.rglob("*") if ".hydra" not in p.parts and p.name != "run_boost.log"]
    assert written == [], written  # nothing written besides Hydra's own config record
    return done.stderr


def test_bad_reference_is_refused_before_anything_is_written(files, score_cache, tmp_path):
    bad = tmp_path / "bad_ref.npz"
    np.savez(bad, mu=np.zeros(64), sigma=np.eye(64))
    err = run_error(files, score_cache, tmp_path, f"metrics.path={bad}")
    assert "bad_ref.npz: mu is float64 (64,), expected float (2048,)" in err
    np.savez(bad, images=np.zeros((4, 8, 8, 3), np.uint8))
    assert "holds neither mu/sigma nor arr_0" in run_error(files, score_cache, tmp_path, f"metrics.path={bad}")


def test_cifar10_reference_refuses_imagenet_images(files, score_cache, tmp_path):
    err = run_error(files, score_cache, tmp_path, "metrics=cifar10")
    assert "CIFAR-10 (32x32) but the images are 128x128" in err and "metrics=reference_npz" in err


def test_overlay_asks_for_the_classifier_checkpoint(files, score_cache, tmp_path):
    args = [a for a in imagenet_run(files, tmp_path / "run") if not a.startswith(("classifier.checkpoint", "metrics."))]
    done = boost([*args, "metrics=none"], tmp_path, score_cache)
    assert done.returncode != 0 and "classifier.checkpoint" in done.stderr
