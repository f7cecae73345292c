"""run_boost.py refuses bad input in one line, before writing anything."""

from __future__ import annotations

import numpy as np
import pytest

from test_run_boost_cli import boost


def run_error(tmp_path, cache, *args):
    out = tmp_path / "run"
    done = boost([*args, "logger=none", "metrics=none", f"hydra.run.dir={out}"], tmp_path, cache)
    assert done.returncode != 0
    written = [p.name for p in out.rglob("*") if ".hydra" not in p.parts and p.name != "run_boost.log"]
    assert written == [], written  # nothing written besides Hydra's own config record
    return done.stderr


def npz(tmp_path, images, labels=None):
    path = tmp_path / "s.npz"
    np.savez(path, arr_0=images, **({"arr_1": labels} if labels is not None else {}))
    return f"generator.path={path}"


def test_unknown_generator_lists_the_known_ones(tmp_path, score_cache):
    err = run_error(tmp_path, score_cache, "generator=nosuchgan")
    assert "Could not find 'generator/nosuchgan'" in err and "sngan" in err


def test_generator_without_weights_names_the_key(tmp_path, score_cache):
    err = run_error(tmp_path, score_cache, "generator=sngan")
    assert "generator.checkpoint" in err and "random_init" in err


def test_missing_checkpoint_names_the_file(tmp_path, score_cache):
    err = run_error(tmp_path, score_cache, "generator=sngan", f"generator.checkpoint={tmp_path / 'netG.pth'}")
    assert "netG.pth" in err


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((4, 32, 32, 3), np.float32), None, "not uint8"),
    (np.zeros((4, 3, 32, 32), np.uint8), None, "NHWC"),
    (np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 10]), "outside [0, 10)"),
])
def test_bad_npz(tmp_path, score_cache, images, labels, match):
    err = run_error(tmp_path, score_cache, "generator=samples", npz(tmp_path, images, labels))
    assert match in err


def test_fewer_samples_than_asked(tmp_path, score_cache):
    err = run_error(tmp_path, score_cache, "generator=samples", npz(tmp_path, np.zeros((4, 32, 32, 3), np.uint8)),
                    "num_samples=5")
    assert "num_samples=5 but the source holds 4 images" in err


def test_classifier_of_other_classes(tmp_path, score_cache):
    err = run_error(tmp_path, score_cache, "generator=samples", npz(tmp_path, np.zeros((4, 32, 32, 3), np.uint8)),
                    "num_samples=4", "classifier=resnet18_narrow", "classifier.num_classes=100",
                    "classifier.checkpoint=null")
    assert "predicts 100 classes" in err
