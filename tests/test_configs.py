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


def experiment_entry(option: str) -> str:
    """The entry point an experiment overlay is for, read off the groups it overrides."""
    import yaml

    for item in yaml.safe_load((CONF / "experiment" / f"{option}.yaml").read_text()).get("defaults", []):
        if isinstance(item, str) and item != "_self_":
            return experiment_entry(item)  # it builds on another experiment
        if isinstance(item, dict) and "override /module" in item:
            return "train_generator"
        if isinstance(item, dict) and {"override /generator", "override /metrics"} & set(item):
            return "run_boost"
    return "train_robust"


@pytest.mark.parametrize("option", options("classifier"))
def test_each_classifier_config_instantiates(option, recwarn):
    cfg = compose_cfg("boost", [f"classifier={option}"])
    if any(OmegaConf.is_missing(cfg.classifier, k) for k in ("checkpoint", "name")):
        pytest.skip("needs a checkpoint of the user's (loaded in tests/test_imagenet_boost.py, "
                    "tests/models/test_robustbench.py)")
    classifier = instantiate(cfg.classifier)
    assert not [w for w in recwarn if "instead of the configured" in str(w.message)]
    assert classifier.num_classes == cfg.classifier.num_classes
    assert classifier.model.width == cfg.classifier.width


@pytest.mark.parametrize("option", options("attack"))
def test_each_attack_config_feeds_the_boost_module(option, tiny_classifier, tmp_path):
    """The attack group through the path it feeds: AttackSpec -> the Boost module -> saved chunks."""
    import lightning as L
    import numpy as np

    from bigroc.data import GeneratedDataModule
    from bigroc.generators import build_generator
    from bigroc.lit.boost_module import Boost
    from bigroc.storage import ChunkStore

    cfg = compose_cfg("boost", [f"attack={option}", "epsilon=0.03", "steps=2"])
    spec = instantiate(cfg.attack)
    assert spec.norm == cfg.attack.norm and (spec.eps, spec.steps) == (cfg.epsilon, cfg.steps)
    np.savez(tmp_path / "s.npz", arr_0=np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    source = build_generator("samples", path=str(tmp_path / "s.npz"))
    store = ChunkStore(tmp_path / "chunks")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False,
                        use_distributed_sampler=False, enable_model_summary=False)
    trainer.test(Boost(source, tiny_classifier, spec, chunks=store, calibration_samples=4),
                 datamodule=GeneratedDataModule(4, 4), verbose=False)
    chunk = store.load(torch.arange(4))
    delta = (chunk["boosted"].float() - chunk["base"].float()).flatten(1) / 255
    size = delta.norm(dim=1) if spec.norm == "l2" else delta.abs().amax(dim=1)
    rounding = 0.5 / 255 * (delta.shape[1] ** 0.5 if spec.norm == "l2" else 1)  # of the uint8 quantisation
    assert (size <= spec.eps + rounding).all() and (size > 0).any()


def test_train_robust_defaults_follow_madrylab(tiny_classifier):
    cfg = compose_cfg("train_robust", ["classifier=resnet18_narrow"])
    spec = instantiate(cfg.attack)
    assert (spec.eps, spec.steps, spec.step_size, spec.random_start, spec.use_best) == (0.5, 7, 0.1, False, True)
    module = instantiate(cfg.module, classifier=tiny_classifier, attack=spec, _convert_="object")  # as the entry
    assert module.hparams.lr == 0.1 and list(module.hparams.milestones) == [50, 100]
    assert cfg.trainer.max_epochs == 150 and cfg.data.batch_size == 128


@pytest.mark.parametrize("group", ["trainer", "logger", "data", "experiment"])
def test_each_train_robust_option_composes(group, tmp_path):
    for option in options(group):
        if group == "experiment" and experiment_entry(option) != "train_robust":
            continue  # a train_generator.py or run_boost.py experiment
        cfg = compose_cfg("train_robust", [f"{group}={option}"])
        if group == "trainer" and cfg.trainer.accelerator == "cpu":
            trainer = instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
            assert trainer.max_epochs == cfg.epochs
        if group == "data":
            assert instantiate(cfg.data).batch_size == cfg.data.batch_size


def test_experiments_pin_their_settings():
    madry = compose_cfg("train_robust", ["experiment=madry_cifar10_l2"])
    assert (madry.classifier.arch, madry.epsilon, madry.attack.step_size, madry.epochs) == ("resnet50", 0.5, 0.1, 150)
    cpu = compose_cfg("train_robust", ["experiment=cpu_cifar10_l2"])
    assert (cpu.classifier.width, cpu.steps, cpu.attack.random_start, cpu.module.schedule) == (0.25, 3, True, "onecycle")
    standard = compose_cfg("train_robust", ["experiment=cpu_cifar10_standard"])
    assert (standard.epsilon, standard.classifier.width, list(standard.module.test_eps)) == (0.0, 0.25, [0.5])
    paper = compose_cfg("boost", ["experiment=paper_cifar10"])
    assert (paper.num_samples, paper.metrics.ref_split, paper.metrics.ref_samples) == (50000, "train", None)


@pytest.mark.parametrize("option", options("logger"))
def test_interpolate_config_composes_and_compare_follows_the_classifier(option):
    cfg = compose_cfg("interpolate", [f"logger={option}", "classifier=resnet18_narrow",
                                      "compare.checkpoint=null"])
    assert cfg.classifier.checkpoint is None and list(cfg.labels) == ["robust", "standard"]
    assert cfg.c[0] == 0.1 and cfg.c[-1] == 1.0 and cfg.step_size is None
    compare = instantiate(cfg.compare)
    assert compare.model.width == cfg.classifier.width == 0.25

def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_default_boost_job_runs_the_shipped_generator_and_classifier(cifar_root, score_cache, tmp_path):
    import json
    import os

    args = [str(ROOT / "run_boost.py"), f"data.root={cifar_root}", "num_samples=4", "batch_size=4", "steps=2",
            "calibration.samples=8", "metrics.ref_split=test", "metrics.ref_samples=8",
            "metrics.kid_subset_size=4", "logger=none", f"hydra.run.dir={tmp_path}"]
    out = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=os.environ | {"BIGROC_CACHE": str(score_cache)})
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["generator"] == "vae" and metrics["generator_checkpoint"] == "shipped:generator_cifar10_vae"
    assert metrics["classifier"] == "shipped:classifier_cifar10_l2" and metrics["debias"] == "mean"
    assert sum(metrics["debias/calibration"]["mean"]) == 8


def test_default_job_without_cifar10_still_boosts_and_says_what_it_could_not_score(tmp_path):
    import json

    args = [str(ROOT / "run_boost.py"), f"data.root={tmp_path / 'no-data'}", "num_samples=4", "batch_size=4",
            "steps=2", "calibration.samples=8", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"]
    out = run(args, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    said = [line for line in out.stdout.splitlines() if line.startswith("not scored")]
    assert len(said) == 1 and "is missing" in said[0] and "data.download=true" in said[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scored"] == said[0] and "base/fid" not in metrics
    assert metrics["boosted/target_prob"] > metrics["base/target_prob"]
    for name in ("samples_base.npz", "samples_boosted.npz", "grid_before_after.png", "label_histograms.png"):
        assert (tmp_path / "run" / name).is_file()


@pytest.mark.parametrize("option", options("generator"))
def test_each_generator_config_composes(option):
    cfg = compose_cfg("boost", [f"generator={option}"])
    assert cfg.generator._target_ == "bigroc.generators.build_generator"
    if option in ("samples", "stylegan2_ada") or option.startswith("cifar10_"):
        return  # need a file or a checkout, or are shipped (tests/generators/test_shipped_generators.py)
    source = instantiate(cfg.generator, random_init=True)
    x, _ = source.sample(1, seed=0)
    assert x.shape == (1, 3, 32, 32)


@pytest.mark.parametrize("option", options("metrics"))
def test_each_metrics_config_composes(option):
    path = ["metrics.path=ref.npz"] if option == "reference_npz" else []  # a file of the user's
    cfg = compose_cfg("boost", [f"metrics={option}", *path])
    assert (instantiate(cfg.metrics).max_features == 10000) if cfg.metrics else option == "none"


def test_train_robust_prints_its_job_config(tmp_path):
    out = run([str(ROOT / "train_robust.py"), "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert OmegaConf.create(out.stdout).steps == 7
