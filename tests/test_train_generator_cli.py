"""train_generator.py through its command line: the export contract and its errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bigroc.generators import build_generator
from cli import entry

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_steps=2", "data.batch_size=16", "data.train_size=64", "trainer.enable_progress_bar=false",
        "module.grid_size=4"]

def compose_job(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train_generator", overrides=overrides)


def train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return entry("train_generator.py", args, cwd)

def test_vae_run_leaves_an_export_a_grid_and_a_wandb_run(cifar_root, tmp_path):
    out = tmp_path / "run"
    done = train([f"data.root={cifar_root}", *TINY, "module.vae.ch=8", "module.vae.latent_dim=16",
                  f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    sidecar = json.loads((out / "generator.json").read_text())
    assert sidecar["generator"] == "vae" and sidecar["global_step"] == 2 and sidecar["batch_size"] == 16
    gen = build_generator("vae", checkpoint=out / "generator.safetensors", latent_dim=16, ch=8)
    assert gen.sample(2)[0].shape == (2, 3, 32, 32)
    assert (out / "checkpoints" / "last.ckpt").exists() and list((out / "samples").glob("*.png"))
    assert list(out.glob("wandb/offline-run-*/files/media/images/**/*.png"))  # the grid reached W&B

    resumed = tmp_path / "resumed"
    done = train([f"data.root={cifar_root}", *TINY, "module.vae.ch=8", "module.vae.latent_dim=16", "logger=none",
                  "trainer.max_steps=3", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
                  f"hydra.run.dir={resumed}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((resumed / "generator.json").read_text())["global_step"] == 3

def test_unknown_model_fails_with_the_known_ones(tmp_path):
    done = train(["module=diffusion", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert done.returncode != 0
    assert "module/diffusion" in done.stderr and "vae" in done.stderr

def test_config_prints_without_training(tmp_path):
    done = train(["--cfg", "job", "module=vae"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "VAETraining" in done.stdout


def test_conditional_gan_run_exports_what_its_boost_config_loads(cifar_root, tmp_path):
    out = tmp_path / "run"
    done = train([f"data.root={cifar_root}", *TINY, "module=cgan_pd", "module.generator.ngf=8",
                  "module.discriminator.ndf=8", "module.n_dis=1", "logger=none", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    sidecar = json.loads((out / "generator.json").read_text())
    assert sidecar["generator"] == "cgan_pd" and sidecar["weights"] == "ema" and sidecar["batches"] == 1
    assert sidecar["boost_config"].startswith("generator=cgan_pd generator.checkpoint=generator.safetensors")
    gen = build_generator("cgan_pd", checkpoint=out / "generator.safetensors", ngf=8)
    x, y = gen.sample(10)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == list(range(10))


@pytest.mark.parametrize("option", sorted(p.stem for p in (ROOT / "conf" / "module").glob("*.yaml")))
def test_every_module_option_instantiates(option):
    module = instantiate(compose_job([f"module={option}"]).module)
    assert module.sampler().sample(1)[0].shape == (1, 3, 32, 32)


@pytest.mark.parametrize("experiment", ["cpu_vae", "cpu_sngan", "cpu_cgan_pd"])
def test_cpu_experiments_compose_and_instantiate(experiment):
    cfg = compose_job([f"experiment={experiment}"])
    assert cfg.trainer.accelerator == "cpu" and cfg.data.augment is False
    assert instantiate(cfg.module).sampler().sample(1)[0].shape == (1, 3, 32, 32)
