"""The generators shipped in bigroc/weights: each preset loads and samples varied images, and
its sidecar says how it was trained and how good it is (FID against CIFAR-10 train)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
from hydra.utils import instantiate

from bigroc.shipped import shipped_weights
from test_gen_configs import PRESETS, compose_generator

SHIPPED_BUDGET_MB = 30  # all weights in the package together


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_samples_varied_images_and_its_sidecar_records_training_and_fid(preset):
    cfg = compose_generator(preset, [])
    source = instantiate(cfg)
    x, y = source.sample(16, seed=0)
    assert x.shape == (16, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert float(x.std(0).mean()) > 0.03  # the images differ from one another
    assert source.conditional == (cfg.name in ("cgan_pd", "cgan"))
    if source.conditional:
        assert y.tolist() == [i % 10 for i in range(16)]

    sidecar = json.loads(shipped_weights(cfg.checkpoint.removeprefix("shipped:")).with_suffix(".json").read_text())
    assert sidecar["dataset"] == "JPEG-rebuilt CIFAR-10"
    assert {"command", "machine", "wall_time_s", "recipe"} <= set(sidecar)
    quality = sidecar["quality"]
    assert quality["reference"].startswith("cifar10-train") and quality["num_samples"] >= 1000
    assert quality["fid"] > 0 and quality["command"].startswith("python run_boost.py")


def test_every_shipped_generator_has_a_preset_and_the_weights_fit_the_budget():
    folder = Path(str(files("bigroc") / "weights"))
    generators = {p.stem for p in folder.glob("generator_*.safetensors")}
    presets = {compose_generator(p, []).checkpoint.removeprefix("shipped:") for p in PRESETS}
    assert generators == presets
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    assert size <= SHIPPED_BUDGET_MB, f"shipped weights take {size:.1f} MB"
