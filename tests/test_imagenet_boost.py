"""ImageNet-shaped boosting without ImageNet: tiny random 1000-class classifiers, tiny
random 64/128-pixel ADM-layout batches. Shapes, 1000-class labels (the batch's and
predicted ones), the resize inside the classifier, and the published-setting overlays."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bigroc.attacks import AttackSpec
from bigroc.boost import bigroc
from bigroc.data import GeneratedDataModule
from bigroc.generators import build_generator
from bigroc.lit.boost_module import Boost
from bigroc.models import build_classifier, save_madry_checkpoint
from test_configs import compose_cfg
from tiny_models import warm_batchnorm

LABELS = np.array([0, 999, 500, 1, 998, 7])
EXPERIMENTS = {"imagenet128_adm_g": 1.5, "imagenet256_adm_g": 3.0, "imagenet256_adm_gu": 1.5,
               "imagenet128_biggan_deep": 5.0}


def tiny_imagenet(input_size: int | None = 64):
    """A random ImageNet ResNet-18 at width 1/16 (4-8-16-32 channels), 1000 classes."""
    torch.manual_seed(0)
    clf = build_classifier("imagenet_resnet18", num_classes=1000, width=1 / 16, input_size=input_size)
    return warm_batchnorm(clf, size=64)


def adm_batch(path, n=6, size=128, labels=True):
    arrays = {"arr_0": np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)}
    if labels:
        arrays["arr_1"] = LABELS[:n]
    np.savez(path, **arrays)
    return build_generator("samples", path=str(path), num_classes=1000)


def run(module, n=6, batch_size=4):
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, inference_mode=False,
                        use_distributed_sampler=False, enable_model_summary=False)
    trainer.test(module, datamodule=GeneratedDataModule(n, batch_size), verbose=False)
    return module.final


ATTACK = AttackSpec(eps=1.5, steps=3, step_size=1.5 * 1.5 / 3)


def test_resize_inside_the_classifier_boosts_at_the_images_size():
    clf = tiny_imagenet(input_size=64)
    for size in (128, 48):  # shrunk (anti-aliased) and enlarged to 64 inside the classifier
        x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(size), requires_grad=True)
        clf(x).logsumexp(1).sum().backward()
        assert (x.grad.abs() > 0).float().mean() > 0.9  # every pixel feeds the resized image
        y = torch.tensor([0, 999, 421])
        x_boost, _ = bigroc(clf, x.detach(), y, eps=1.5, steps=3, step_size=0.75)
        assert x_boost.shape == x.shape and x_boost.min() >= 0 and x_boost.max() <= 1
        assert (x_boost - x).flatten(1).norm(dim=1).max() <= 1.5 + 1e-5
        with torch.no_grad():
            gain = clf(x_boost).log_softmax(1) - clf(x.detach()).log_softmax(1)
        assert (gain[torch.arange(3), y] > 0).all()


def test_the_batchs_own_1000_class_labels_are_the_targets(tmp_path):
    module = Boost(adm_batch(tmp_path / "s.npz"), tiny_imagenet(), ATTACK, labels="generator", debias="none",
                   grid_size=4)
    final = run(module)
    hist = np.array(final["labels/histogram"])
    assert hist.shape == (1000,) and hist.sum() == 6 and (hist[LABELS] == 1).all()
    assert final["boosted/target_prob"] > final["base/target_prob"]
    assert 0 < final["boosted/delta_l2"] <= 1.5 + 0.05  # quantisation adds a little
    base, boosted, grid_labels = module.grid
    assert base.shape == boosted.shape == (4, 3, 128, 128) and boosted.dtype == torch.uint8 and len(grid_labels) == 4


@pytest.mark.parametrize("debias", ["none", "mean"])
def test_predicted_1000_class_labels_with_and_without_debiasing(tmp_path, debias):
    module = Boost(adm_batch(tmp_path / "s.npz", size=64), tiny_imagenet(input_size=None), ATTACK,
                   labels="predicted", debias=debias, calibration_samples=6)
    final = run(module)
    assert set(module.calibration) == {"none", "mean", "balanced"}
    assert all(len(h) == 1000 and sum(h) == 6 for h in module.calibration.values())
    assert module.logit_shift.shape == (1000,) and bool(module.logit_shift.any()) == (debias == "mean")
    assert sum(final["labels/histogram"]) == 6


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_imagenet_overlays_pin_the_published_setting(name):
    cfg = compose_cfg("boost", [f"experiment={name}"])
    eps = EXPERIMENTS[name]
    spec = instantiate(cfg.attack)
    assert (spec.eps, spec.steps, spec.norm) == (eps, 7, "l2")
    assert spec.boost_step_size == pytest.approx(1.5 * eps / 7, rel=1e-12)  # the notebooks' 1.5 * eps / 7
    assert cfg.generator.name == "samples" and cfg.generator.num_classes == 1000
    assert cfg.classifier.arch == "imagenet_resnet50" and cfg.classifier.input_size is None
    assert OmegaConf.is_missing(cfg.classifier, "checkpoint") and OmegaConf.is_missing(cfg.generator, "path")
    assert cfg.metrics.dataset == "npz" and OmegaConf.is_missing(cfg.metrics, "path")
    assert (cfg.labels, cfg.debias, cfg.num_samples) == ("generator", "none", 50000)
    switched = compose_cfg("boost", [f"experiment={name}", "labels=predicted", "metrics=none"])
    assert switched.labels == "predicted" and not switched.metrics and switched.epsilon == eps


def test_overlay_classifier_loads_a_madry_imagenet_checkpoint(tmp_path):
    clf = tiny_imagenet(input_size=None)
    save_madry_checkpoint(clf, tmp_path / "robust.pt", epoch=90)
    cfg = compose_cfg("boost", ["experiment=imagenet128_adm_g", f"classifier.checkpoint={tmp_path / 'robust.pt'}",
                                "classifier.input_size=64"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*instead of the configured")  # tiny, not a ResNet-50
        loaded = instantiate(cfg.classifier)
    x = torch.rand(2, 3, 128, 128)
    clf.input_size = 64
    with torch.no_grad():
        assert torch.allclose(loaded(x), clf.eval()(x), atol=1e-5)
    assert loaded.input_size == 64 and loaded.num_classes == 1000
