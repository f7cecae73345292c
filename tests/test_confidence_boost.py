"""Confidence-aware boosting (``stop_at``, ``doubt_step``): properties that can fail.

Float64 throughout, so the comparisons with the plain attack hold on every CPU's kernels.
"""

from __future__ import annotations

import pytest
import torch

from bigroc.attacks import AttackSpec, check_in_ball, pgd
from bigroc.boost import bigroc
from bigroc.models import build_classifier

EPS, STEPS = 1.0, 8


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return build_classifier("resnet18", width=0.25).double().eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(8, 3, 32, 32, generator=g, dtype=torch.float64)


def p_target(classifier, x, y):
    with torch.no_grad():
        return classifier(x).softmax(1).gather(1, y[:, None]).squeeze(1)


def iterates(classifier, x, y, steps, **kw):
    """The plain attack's iterate after each number of steps 0..steps."""
    return [x] + [bigroc(classifier, x, y, eps=EPS, steps=t, step_size=EPS / steps, **kw)[0]
                  for t in range(1, steps + 1)]


def test_an_image_already_above_stop_at_is_returned_unchanged(classifier, images):
    y = classifier(images).argmax(1)  # each image's most likely class
    stop_at = float(p_target(classifier, images, y).min()) * 0.999  # every image is above it already
    boosted, _ = bigroc(classifier, images, y, eps=EPS, steps=STEPS, stop_at=stop_at)
    assert torch.equal(boosted, images)


def test_the_others_follow_the_plain_attack_until_they_cross(classifier, images):
    y = torch.arange(8) % 10
    plain = iterates(classifier, images, y, STEPS)
    probs = torch.stack([p_target(classifier, x, y) for x in plain])  # (steps + 1, N)
    stop_at = float(probs[STEPS // 2].median())  # about half the images cross within the run
    boosted, _ = bigroc(classifier, images, y, eps=EPS, steps=STEPS, stop_at=stop_at)
    crossed = 0
    for i in range(len(images)):
        reached = (probs[:, i] >= stop_at).nonzero()
        t = int(reached[0]) if len(reached) else STEPS  # the first iterate at or above stop_at
        crossed += t < STEPS
        assert torch.allclose(boosted[i], plain[t][i], rtol=0, atol=1e-12), (i, t)
    assert 0 < crossed < len(images)  # the test saw both kinds


def test_a_stopped_run_differs_from_the_plain_one(classifier, images):
    y = torch.arange(8) % 10
    plain, _ = bigroc(classifier, images, y, eps=EPS, steps=STEPS)
    halfway, _ = bigroc(classifier, images, y, eps=EPS, steps=STEPS // 2, step_size=EPS / STEPS)
    stop_at = float(p_target(classifier, halfway, y).median())
    stopped, _ = bigroc(classifier, images, y, eps=EPS, steps=STEPS, stop_at=stop_at)
    assert not torch.equal(plain, stopped)
    assert (p_target(classifier, stopped, y) >= stop_at).sum() >= 4


@pytest.mark.parametrize("kw", [{"stop_at": 0.5}, {"doubt_step": True}, {"stop_at": 0.5, "doubt_step": True}])
def test_batch_independent_in_the_ball_and_in_the_cube(classifier, images, kw):
    y = torch.arange(8) % 10
    whole, _ = bigroc(classifier, images, y, eps=EPS, steps=STEPS, **kw)
    parts = torch.cat([bigroc(classifier, images[i:i + 3], y[i:i + 3], eps=EPS, steps=STEPS, **kw)[0]
                       for i in range(0, 8, 3)])
    assert torch.allclose(whole, parts, rtol=0, atol=1e-12)
    check_in_ball(whole, images, eps=EPS, norm="l2")


def test_doubt_scales_each_step_by_one_minus_p(classifier, images):
    inside = 0.1 + 0.8 * images  # away from 0 and 1: no clamping shortens the step
    y = torch.arange(8) % 10
    one, _ = bigroc(classifier, inside, y, eps=EPS, steps=1, step_size=0.3, doubt_step=True)
    moved = (one - inside).flatten(1).norm(dim=1)
    # the attack's loss takes float32 logits, so p agrees to float32's rounding
    assert torch.allclose(moved, 0.3 * (1 - p_target(classifier, inside, y)), rtol=1e-6)


@pytest.mark.parametrize("stop_at", [0, 1, 1.5, -0.1, "high", True])
def test_bad_stop_at_is_refused(stop_at):
    with pytest.raises(ValueError, match="attack.stop_at must be a probability in \\(0, 1\\)"):
        AttackSpec(eps=1.0, steps=3, stop_at=stop_at)


def test_untargeted_attacks_refuse_the_confidence_options(classifier, images):
    with pytest.raises(ValueError, match="targeted attacks"):
        pgd(classifier, images, torch.zeros(8, dtype=torch.long), eps=EPS, steps=2, step_size=0.5,
            targeted=False, stop_at=0.9)
