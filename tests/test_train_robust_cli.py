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
from cli import entry

ROOT = Path(__file__).resolve().parents[1]
TINY = ["classifier=resnet18_narrow", "trainer.max_steps=2", "trainer.limit_val_batches=1",
        "data.batch_size=16", "data.test_size=32", "steps=2", "trainer.enable_progress_bar=false"]


def train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return entry("train_robust.py", args, cwd)


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


def test_the_readme_smoke_command_runs_as_written(cifar_root, tmp_path):
    (tmp_path / "data").symlink_to(cifar_root)
    command = "python train_robust.py experiment=cpu_cifar10_l2 classifier=resnet18 debug=smoke data.root=data"
    assert command in (ROOT / "README.md").read_text()
    done = train(command.split()[2:] + ["logger=none"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (sidecar,) = (tmp_path / "outputs" / "train_robust").glob("*/*/classifier.json")
    meta = json.loads(sidecar.read_text())
    assert meta["arch"] == "resnet18" and meta["width"] == 1.0 and meta["global_step"] == 2
    assert meta["test_images"] == 16 and set(meta["metrics"]) == {"test/clean_acc", "test/adv_acc@0.5"}


def test_sigterm_stops_training_with_a_checkpoint_and_the_run_resumes(cifar_root, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    args = [f"data.root={cifar_root}", *TINY, "trainer.max_steps=400", "checkpoint.every_n_train_steps=2",
            "logger=none", f"hydra.run.dir={out}"]
    env = os.environ | {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train_robust.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert time.time() - sent < 60  # a few training steps of a tiny net, not the 400
    step = torch.load(last, weights_only=True)["global_step"]
    assert 2 <= step < 400 and not (out / "classifier.json").exists()
    resumed = train([*args[:-1], "trainer.max_steps=6" if step < 6 else f"trainer.max_steps={step + 2}",
                     "ckpt_path=last", f"hydra.run.dir={out}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "classifier.json").read_text())["global_step"] == max(6, step + 2)
