"""run_boost.py never overwrites a finished result, never mixes two runs, never saves garbage.

Each refusal is checked three ways: the exit status (2), the one-line message naming the
input and the fix (no traceback), and the run directory's file hashes before and after.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bigroc.storage import ChunkStore
from bigroc.models import build_classifier, save_classifier
from files import crafted_pickle, tree_hashes
from test_run_boost_cli import boost

QUICK = ["steps=2", "num_samples=8", "batch_size=4", "calibration.samples=16", "metrics=none", "logger=none",
         "trainer.enable_progress_bar=false"]


def samples(tmp_path, shape=(8, 32, 32, 3), name="s.npz"):
    path = tmp_path / name
    if path.exists():  # rewriting it would change its modification time, and so the run's identity
        return path
    np.savez(path, arr_0=np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    return path


def run(tmp_path, cache, *args, out=None):
    extra = [f"hydra.run.dir={out}"] if out is not None else []
    return boost(["generator=samples", f"generator.path={samples(tmp_path)}", *QUICK, *args, *extra], tmp_path, cache)


def assert_refused(done, *needles):
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("error: "))
    for needle in needles:
        assert needle in line, line


def test_a_finished_run_with_other_settings_is_refused_untouched(tmp_path, score_cache):
    out = tmp_path / "run"
    assert run(tmp_path, score_cache, out=out).returncode == 0
    before = tree_hashes(out)
    assert ".hydra/config.yaml" in before and "metrics.json" in before
    assert_refused(run(tmp_path, score_cache, "epsilon=0.5", out=out), "finished run with other settings",
                   "eps", "hydra.run.dir")
    assert tree_hashes(out) == before  # Hydra's .hydra/ record included


def test_the_default_directory_tells_classifier_checkpoints_apart(tmp_path, score_cache):
    other = tmp_path / "other.safetensors"
    torch.manual_seed(3)
    save_classifier(build_classifier("resnet18", width=0.25), other, meta={})
    assert run(tmp_path, score_cache).returncode == 0
    assert run(tmp_path, score_cache, f"classifier.checkpoint={other}").returncode == 0
    runs = sorted((tmp_path / "outputs" / "boost" / "samples").iterdir())
    assert len(runs) == 2
    classifiers = {json.loads((r / "metrics.json").read_text())["classifier"] for r in runs}
    assert classifiers == {"shipped:classifier_cifar10_l2", str(other)}


def test_chunks_of_other_settings_are_never_reused(tmp_path, score_cache):
    out = tmp_path / "run"
    foreign = ChunkStore(out / ".chunks" / "seed0", digest="0123456789")  # no settings file beside them
    u8 = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    foreign.save(torch.arange(4), u8, u8, torch.zeros(4, dtype=torch.long))
    before = tree_hashes(out)
    assert_refused(run(tmp_path, score_cache, out=out), "batches of another run", "0123456789")
    assert tree_hashes(out) == before
    assert ChunkStore(out / ".chunks" / "seed0", digest="another").load(torch.arange(4)) is None


REFUSED = [
    (["num_samples=0"], ["num_samples must be in [1, 10000000]"]),
    (["batch_size=0"], ["batch_size must be 'auto' or an integer in [1, 10000000]"]),
    (["seed=abc"], ["seed must be an integer", "'abc'"]),
    (["classifier=resnet18_narrow", "classifier.num_classes=100", "classifier.checkpoint=null"],
     ["predicts 100 classes"]),
]


def test_refusals_write_nothing_and_leave_the_next_run_free(tmp_path, score_cache):
    out = tmp_path / "run"
    for args, needles in REFUSED:
        assert_refused(run(tmp_path, score_cache, *args, out=out), *needles)
        assert tree_hashes(out) == {}, args
    assert run(tmp_path, score_cache, out=out).returncode == 0  # no false "other settings" afterwards


@pytest.mark.parametrize("shape, args, needles", [
    ((4, 64, 64, 3), ["num_samples=4"], ["cannot take 64x64 images", "classifier.input_size=32"]),
    ((4, 4, 4, 3), ["num_samples=4"], ["cannot take 4x4 images"]),
    ((4, 32, 48, 3), ["num_samples=4", "metrics=cifar10", "classifier.input_size=32"],
     ["metrics=cifar10", "48x32", "metrics=reference_npz"]),
])
def test_images_the_classifier_or_reference_cannot_take(tmp_path, score_cache, shape, args, needles):
    out = tmp_path / "run"
    path = samples(tmp_path, shape, name="odd.npz")
    assert_refused(boost(["generator=samples", f"generator.path={path}", *QUICK, *args, f"hydra.run.dir={out}"],
                         tmp_path, score_cache), *needles)
    assert tree_hashes(out) == {}


def test_stale_temporaries_and_leftover_chunks_are_cleaned(tmp_path, score_cache):
    out = tmp_path / "run"
    assert run(tmp_path, score_cache, out=out).returncode == 0
    stale = out / ".samples_boosted.npz.tmp999999999"  # no such process
    stale.write_bytes(b"half a file")
    digest = json.loads((out / "metrics.json").read_text())["run_digest"]
    leftover = ChunkStore(out / ".chunks" / "seed0", digest=digest)  # a kill during clean-up
    u8 = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    leftover.save(torch.arange(4), u8, u8, torch.zeros(4, dtype=torch.long))
    again = run(tmp_path, score_cache, out=out)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert not stale.exists() and not (out / ".chunks").exists()


def test_a_nan_classifier_is_refused_by_name(tmp_path, score_cache):
    torch.manual_seed(0)
    clf = build_classifier("resnet18", width=0.25)
    clf.model.linear.bias.data[3] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_classifier(clf, path, meta={})
    out = tmp_path / "run"
    assert_refused(run(tmp_path, score_cache, f"classifier.checkpoint={path}", out=out),
                   "nan.safetensors has non-finite weights",
                   "another checkpoint")
    assert tree_hashes(out) == {}


def test_hostile_files_get_one_line(tmp_path, score_cache):
    marker = tmp_path / "ran"
    garbage = tmp_path / "clf.pt"
    garbage.write_bytes(b"\x80" + np.random.default_rng(1).bytes(500))
    assert_refused(run(tmp_path, score_cache, f"classifier.checkpoint={garbage}"), "clf.pt is not a readable")
    evil = tmp_path / "netG.pth"
    torch.save({"model_state_dict": {"l1.weight": torch.zeros(1)}, "x": __import__("files").CodeRunner(marker)},
               evil)
    done = boost(["generator=sngan", f"generator.checkpoint={evil}", *QUICK], tmp_path, score_cache)
    assert_refused(done, "netG.pth holds Python objects beyond tensors")
    root = tmp_path / "cifar"
    crafted_pickle(root / "cifar-10-batches-py" / "test_batch", marker)
    done = run(tmp_path, score_cache, "metrics=cifar10", "metrics.ref_split=test", f"data.root={root}",
               f"metrics.cache_dir={tmp_path / 'fresh-cache'}")
    assert_refused(done, "test_batch asks to load posix.system")
    assert not marker.exists()


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to, root included (the immutable attribute), or a skip."""
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here: cannot make a folder read-only for root")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_run_directory_that_cannot_be_written(tmp_path, score_cache, read_only_dir):
    assert_refused(run(tmp_path, score_cache, out=read_only_dir), "the directory cannot be written",
                   "writable hydra.run.dir")
    assert list(read_only_dir.iterdir()) == []
