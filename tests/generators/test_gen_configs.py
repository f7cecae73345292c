"""Every conf/generator/*.yaml composes and instantiates through Hydra (tiny widths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bigroc.generators import GENERATORS, ImageSource
from bigroc.generators.registry import family_keys


CONF = Path(__file__).resolve().parents[2] / "conf"
# cifar10_*: a family's config plus shipped weights (tests/generators/test_shipped_generators.py)
PRESETS = {p.stem for p in (CONF / "generator").glob("cifar10_*.yaml")}
OPTIONS = sorted(p.stem for p in (CONF / "generator").glob("*.yaml") if p.stem not in PRESETS)
TINY = {"ngf": 4, "ch": 2, "latent_dim": 8}  # where a family has the key
COMMON = {"_target_", "name", "checkpoint", "random_init"}


def compose_generator(option: str, overrides: list[str]):
    overrides = [f"generator.{o}" for o in overrides]  # a group's file composes under its package
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=f"generator/{option}", overrides=overrides).generator


def test_every_registered_family_has_a_config():
    assert OPTIONS == sorted(GENERATORS)
    assert {compose_generator(p, []).name for p in PRESETS} <= set(GENERATORS)


@pytest.mark.parametrize("option", OPTIONS)
def test_config_keys_belong_to_the_family(option):
    cfg = OmegaConf.to_container(compose_generator(option, []))
    assert cfg["_target_"] == "bigroc.generators.build_generator" and cfg["name"] == option
    assert set(cfg) - COMMON <= set(family_keys(option))


@pytest.mark.parametrize("option", sorted(set(OPTIONS) - {"samples", "stylegan2_ada"}))
def test_latent_config_instantiates(option):
    keys = family_keys(option)
    tiny = [f"{k}={v}" for k, v in TINY.items() if k in keys]
    cfg = compose_generator(option, ["random_init=true", *tiny])
    gen = instantiate(cfg)
    assert isinstance(gen, ImageSource) and len(gen) > 10**12
    x, y = gen.sample(2, seed=0)
    assert x.shape == (2, 3, 32, 32) and (y is None) != gen.conditional
    with pytest.raises(Exception, match="has no weights: set generator.checkpoint"):  # Hydra wraps it
        instantiate(compose_generator(option, []))


def test_samples_config_instantiates(tmp_path):
    np.savez(tmp_path / "s.npz", arr_0=np.zeros((3, 32, 32, 3), np.uint8), arr_1=np.array([1, 2, 3]))
    source = instantiate(compose_generator("samples", [f"path={tmp_path / 's.npz'}"]))
    assert len(source) == 3 and torch.equal(source.sample(3)[1], torch.tensor([1, 2, 3]))


def test_stylegan_config_needs_repo_path():
    cfg = compose_generator("stylegan2_ada", ["checkpoint=snapshot.pkl"])
    with pytest.raises(Exception, match="generator.repo_path"):
        instantiate(cfg)
