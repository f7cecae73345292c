"""train_robust.py through its command line: the contract scripts and checks rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bigroc.models import load_classifier
from files import CodeRunner, crafted_pickle

ROOT = Path(__file__).resolve().parents[1]
TINY = ["classifier=resnet18_narrow", "trainer.max_steps=2", "trainer.limit_val_batches=1",
        "data.batch_size=16", "data.test_size=32", "steps=2", "trainer.enable_progress_bar=false"]


def train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, str(ROOT / "train_robust.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_contract_leaves_an_exported_classifier(cifar_root, tmp_path):
    out = tmp_path / "run"
    done = train([f"data.root={cifar_root}", *TINY, "logger=none", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    sidecar = json.loads((out / "classifier.json").read_text())
    assert sidecar["arch"] == "resnet18" and sidecar["global_step"] == 2 and sidecar["test_images"] == 32
    assert {"test/clean_acc", "test/adv_acc@0.5"} <= set(sidecar["metrics"])
    assert load_classifier(out / "classifier.safetensors")(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert (out / "checkpoints" / "last.ckpt").exists()
    # Resuming from the command line: the saved hyperparameters must load weights-only.
    resumed = train([f"data.root={cifar_root}", *TINY, "trainer.max_steps=4", "logger=none",
                     f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'resumed'}"],
                    tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_sidecar = json.loads((tmp_path / "resumed" / "classifier.json").read_text())
    assert resumed_sidecar["global_step"] == 4
    # The wall time is the whole training's: the first part, stored in the checkpoint, plus the resumed one.
    first_part = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["bigroc_train_seconds"]
    assert 0 < first_part < resumed_sidecar["wall_time_s"]


def test_resume_paths_are_checked_before_training(cifar_root, tmp_path):
    args = [f"data.root={cifar_root}", *TINY, "logger=none"]
    last = train([*args, "ckpt_path=last", f"hydra.run.dir={tmp_path / 'fresh'}"], tmp_path)
    assert last.returncode == 2 and "nothing to resume" in last.stderr and "Traceback" not in last.stderr
    assert not (tmp_path / "fresh" / "checkpoints").exists()  # no silent fresh start
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "loops": {}, "x": CodeRunner(marker)}, evil)
    cut = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "loops": {}}, cut)
    cut.write_bytes(cut.read_bytes()[:300])
    for path, message in ((evil, "holds Python objects beyond tensors"), (cut, "cut.ckpt is not a readable")):
        done = train([*args, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / path.stem}"], tmp_path)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not marker.exists()


def test_multirun_gives_one_export_and_one_wandb_run_per_job(cifar_root, tmp_path):
    sweep = tmp_path / "sweep"
    done = train(["-m", f"data.root={cifar_root}", *TINY, "epsilon=0.25,0.5", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    eps = sorted(json.loads(p.read_text())["train_eps"] for p in sweep.glob("*/classifier.json"))
    assert eps == [0.25, 0.5]
    assert len(list(sweep.glob("*/wandb/offline-run-*"))) == 2


def test_missing_data_fails_with_the_file_and_the_fix(tmp_path):
    done = train([f"data.root={tmp_path / 'nowhere'}", *TINY, "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
                 tmp_path)
    assert done.returncode != 0
    assert "data_batch_1 is missing" in done.stderr and "data.download=true" in done.stderr


def test_two_process_cpu_ddp_trains_and_exports_once(cifar_root, tmp_path):
    out = tmp_path / "run"
    done = train([f"data.root={cifar_root}", *TINY, "trainer=ddp_cpu", "data.test_size=64", "logger=none",
                  f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    sidecar = json.loads((out / "classifier.json").read_text())
    # Two ranks of 16: a global batch of 32; each rank tests its half of the 64 images.
    assert sidecar["batch_size"] == 32 and sidecar["test_images"] == 64 and sidecar["global_step"] == 2


def test_a_crafted_cifar_batch_is_refused(tmp_path):
    marker = tmp_path / "ran"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        crafted_pickle(tmp_path / "cifar" / "cifar-10-batches-py" / name, marker)
    done = train([f"data.root={tmp_path / 'cifar'}", *TINY, "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
                 tmp_path)
    assert done.returncode == 2 and "asks to load posix.system" in done.stderr and not marker.exists()
