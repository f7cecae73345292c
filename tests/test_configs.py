"""Every config option composes and instantiates; the entry points run under Hydra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("option", options("classifier"))
def test_each_classifier_config_instantiates(option):
    cfg = compose_cfg("boost", [f"classifier={option}"])
    classifier = instantiate(cfg.classifier)
    assert classifier.num_classes == cfg.classifier.num_classes
    assert classifier.model.width == cfg.classifier.width


@pytest.mark.parametrize("option", options("attack"))
def test_each_attack_config_boosts(option, tiny_classifier, images):
    cfg = compose_cfg("boost", [f"attack={option}", "epsilon=0.03", "steps=2"])
    x_boost, y = instantiate(cfg.attack)(tiny_classifier, images)
    assert cfg.attack.norm == option and cfg.attack.eps == 0.03
    assert x_boost.shape == images.shape and y.shape == (len(images),)


def test_train_robust_config_instantiates(tiny_classifier, images, labels):
    cfg = compose_cfg("train_robust", ["classifier=resnet18_narrow", "epsilon=0.25"])
    assert instantiate(cfg.classifier).model.width == 0.25
    x_adv = instantiate(cfg.train_attack)(tiny_classifier, images, labels)
    assert (x_adv - images).flatten(1).norm(dim=1).max() <= 0.25 + 1e-5


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_run_boost_runs_with_overrides(tmp_path):
    out = run([str(ROOT / "run_boost.py"), "classifier=resnet18_narrow", "epsilon=0.25",
               f"hydra.run.dir={tmp_path}"], ROOT)
    assert out.returncode == 0, out.stderr
    assert "classifier: resnet18, 0.7M parameters" in out.stdout
    assert OmegaConf.load(tmp_path / ".hydra" / "config.yaml").epsilon == 0.25


def test_multirun_sweeps_eps_one_job_each(tmp_path):
    out = run([str(ROOT / "run_boost.py"), "-m", "classifier=resnet18_narrow", "epsilon=0.25,0.5",
               f"hydra.sweep.dir={tmp_path}"], ROOT)
    assert out.returncode == 0, out.stderr
    eps = sorted(OmegaConf.load(p).epsilon for p in tmp_path.glob("*/.hydra/config.yaml"))
    assert eps == [0.25, 0.5]


def test_train_robust_prints_its_job_config(tmp_path):
    out = run([str(ROOT / "train_robust.py"), "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert OmegaConf.create(out.stdout).train_attack.steps == 7
