"""Robust-feature interpolation: the properties of its frames, and its refusals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bigroc.feature_interpolation import feature_distance, features, interpolate, resolve_layers, stage_names
from bigroc.models import build_classifier, load_classifier
from numerics import assert_float64_iterates_agree
from tiny_models import warm_batchnorm

STAGES = ["model.layer1", "model.layer2", "model.layer3", "model.layer4"]


def smooth_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Blobs of colour (low-resolution noise, upsampled): image-like, not white noise."""
    coarse = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return smooth_images(2, seed=1), smooth_images(2, seed=2)


def pixel_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).norm(dim=1)


def test_frames_approach_the_target_features_as_c_grows(pair):
    robust = load_classifier("shipped:classifier_cifar10_l2")
    source, target = pair
    ratios = [0.0, 0.25, 0.5, 0.75, 1.0]
    frames = interpolate(robust, source, target, ratios, steps=30)
    dist = torch.stack([feature_distance(robust, f, target).sum(1) for f in frames])  # (c, N)
    assert (dist[1:] < dist[:-1]).all(), dist
    assert (dist[-1] < 0.1 * dist[0]).all(), dist  # c = 1 lands near the target's features


def test_frames_stay_in_their_balls_and_in_range(tiny_classifier, pair):
    source, target = pair
    ratios = [0.0, 0.1, 0.5, 1.0]
    frames = interpolate(tiny_classifier, source, target, ratios, steps=4)
    assert frames.shape == (4, *source.shape)
    assert torch.equal(frames[0], source)  # c = 0: the source, exactly
    radius = pixel_distance(target, source)
    for c, frame in zip(ratios, frames):
        assert (pixel_distance(frame, source) <= c * radius + 1e-5).all()
        assert frame.min() >= 0 and frame.max() <= 1
    assert (pixel_distance(frames[-1], source) > 0.5 * radius).all()  # it does move


def test_one_image_in_gives_one_frame_per_c_and_batching_changes_nothing(tiny_classifier, pair):
    # Other batch shapes may take other kernels: compared in float64 (tests/numerics.py).
    model, (source, target) = tiny_classifier.double(), (x.double() for x in pair)
    together = interpolate(model, source, target, [0.3, 0.6], steps=3)
    one_by_one = interpolate(model, source, target, [0.3, 0.6], steps=3, batch_size=1)
    single = interpolate(model, source[1], target[1], [0.3, 0.6], steps=3)
    assert single.shape == (2, 3, 32, 32) and single.dtype == torch.float64
    assert_float64_iterates_agree(one_by_one.flatten(0, 1), together.flatten(0, 1))
    assert_float64_iterates_agree(single, together[:, 1])


def test_runs_under_no_grad_and_leaves_the_model_as_it_was(tiny_classifier, pair):
    tiny_classifier.train()
    with torch.no_grad():
        frames = interpolate(tiny_classifier, *pair, 0.5, steps=2, step_size=0.05)
    assert frames.shape == (1, 2, 3, 32, 32) and not frames.requires_grad
    assert all(m.training for m in tiny_classifier.modules())
    assert all(p.grad is None for p in tiny_classifier.parameters())
    assert not any(m._forward_hooks for m in tiny_classifier.modules())


def test_inference_mode_is_refused(tiny_classifier, pair):
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        interpolate(tiny_classifier, *pair, [0.5], steps=1)


def test_layers_by_bare_or_full_name_and_the_default_stages(tiny_classifier):
    assert resolve_layers(tiny_classifier) == stage_names(tiny_classifier) == STAGES
    assert resolve_layers(tiny_classifier, ["layer3", "model.layer4.1"]) == ["model.layer3", "model.layer4.1"]
    with pytest.raises(ValueError, match="unknown layer 'layer9'; stages: model.layer1, model.layer2"):
        resolve_layers(tiny_classifier, ["layer9"])
    with pytest.raises(ValueError, match="twice"):
        resolve_layers(tiny_classifier, ["layer3", "model.layer3"])


def test_taps_of_an_imagenet_resnet_and_of_a_cifar_one_at_another_size():
    torch.manual_seed(0)
    imagenet = build_classifier("imagenet_resnet18", width=1 / 16, num_classes=5).eval()
    feats = features(imagenet, torch.rand(2, 3, 64, 64), resolve_layers(imagenet))
    assert [f.shape for f in feats] == [(2, 4 * 16 * 16), (2, 8 * 8 * 8), (2, 16 * 4 * 4), (2, 32 * 2 * 2)]
    # The CIFAR head only fits 32x32 inputs; the taps stop the pass before it.
    cifar = warm_batchnorm(build_classifier("resnet18", width=0.125))
    frames = interpolate(cifar, smooth_images(1, 3, size=48), smooth_images(1, 4, size=48), [1.0], steps=2)
    assert frames.shape == (1, 1, 3, 48, 48)


def test_weights_pick_the_objective(tiny_classifier, pair):
    model, pair = tiny_classifier.double(), [x.double() for x in pair]
    run = lambda **kw: interpolate(model, *pair, [0.4, 1.0], steps=4, **kw)  # noqa: E731
    # Zero weights add exact zeros to the objective and its gradient: the same frames.
    assert_float64_iterates_agree(run(weights=[0, 0, 0, 1]).flatten(0, 1), run(layers=["layer4"]).flatten(0, 1))
    # Normalised steps: scaling every weight alike changes nothing but the rounding.
    assert_float64_iterates_agree(run(weights=[3, 3, 3, 3]).flatten(0, 1), run().flatten(0, 1))
    assert not torch.allclose(run(weights=[1, 0, 0, 0]), run(weights=[0, 0, 0, 1]), atol=1e-3)


@pytest.mark.parametrize("change, match", [
    (lambda s, t, kw: (s, t[:, :, :16], kw), "one shape"),
    (lambda s, t, kw: (s, t, {**kw, "c": [0.5, 1.5]}), r"c must be a number in \[0, 1\]"),
    (lambda s, t, kw: (s, t, {**kw, "c": [-0.1]}), r"in \[0, 1\]"),
    (lambda s, t, kw: (s, t, {**kw, "c": [math.nan]}), r"in \[0, 1\]"),
    (lambda s, t, kw: (s, t, {**kw, "c": []}), "c is empty"),
    (lambda s, t, kw: (s, t, {**kw, "weights": [1.0, 1.0]}), "2 layer weights for 4 layers"),
    (lambda s, t, kw: (s, t, {**kw, "layers": ["layer4"], "weights": [-1.0]}), "weights must be finite"),
    (lambda s, t, kw: (s * 2, t, kw), r"source values must lie in \[0, 1\]"),
    (lambda s, t, kw: (s, t.masked_fill(t > 0.5, math.inf), kw), "target contains NaN or infinite"),
    (lambda s, t, kw: (s, t, {**kw, "steps": 0}), "steps must be an integer in \\[1, 10000\\]"),
    (lambda s, t, kw: (s, t, {**kw, "layers": ["fc"]}), "unknown layer 'fc'"),
])
def test_bad_input_gets_one_clear_line(tiny_classifier, pair, change, match):
    source, target, kwargs = change(*pair, {"c": [0.5], "steps": 1})
    with pytest.raises(ValueError, match=match) as info:
        interpolate(tiny_classifier, source, target, **kwargs)
    assert "\n" not in str(info.value)
