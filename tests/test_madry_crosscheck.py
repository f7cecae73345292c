"""The engine against the reference implementation: MadryLab's ``robustness`` Attacker.

Same random CIFAR ResNet, same inputs; the bounds (``numerics.py`` says why) test the
maths, not the rounding, so they hold on every x86-64 kernel family:

- one float32 PGD step (step rule, projection, clamp) agrees to ``ONE_STEP_ATOL`` per pixel:
  both sides run the same ops up to summation order. A wrong rule moves pixels by about
  step / 55 (an L2 step of 0.1 spread over 3072 values), two orders above the bound;
- ten steps, run in float64, agree for every image to ``ITERATED_F64_L2``, and the attack
  objective (cross-entropy at the result) to a relative ``OBJECTIVE_RTOL``;
- ``test_the_check_catches_real_differences`` runs the same check against broken attacks
  (wrong step, sign, projection, clamp, ``use_best``) and requires it to fail.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from bigroc import attacks
from bigroc.attacks import pgd
from bigroc.models import build_classifier
from bigroc.models.classifier import CIFAR10_MEAN, CIFAR10_STD
from numerics import ONE_STEP_ATOL, assert_float64_iterates_agree
from tiny_models import warm_batchnorm

OBJECTIVE_RTOL = 1e-6  # float64; measured <= 1.1e-9 (EPYC; AVX-512 and AVX2 kernels)

CASES = [  # constraint, norm, eps, step_size, targeted, use_best
    ("2", "l2", 0.5, 0.1, True, False),
    ("2", "l2", 1.0, 0.1, False, False),
    ("2", "l2", 0.5, 0.1, False, True),  # MadryLab's training default
    ("2", "l2", 0.5, 0.4, False, True),  # long steps: the best iterate is not the last one
    ("inf", "linf", 8 / 255, 2 / 255, True, False),
]


@pytest.fixture
def pair(robustness):
    """(MadryLab AttackerModel, our Classifier) holding the same random weights."""
    from robustness.attacker import AttackerModel

    torch.manual_seed(0)
    ours = warm_batchnorm(build_classifier("resnet18", width=0.25))
    net = robustness.cifar_models.ResNet18(wm=0.25)
    net.load_state_dict(ours.model.state_dict())
    stats = SimpleNamespace(mean=torch.tensor(CIFAR10_MEAN), std=torch.tensor(CIFAR10_STD))
    return AttackerModel(net, stats).eval(), ours


@pytest.fixture
def pair64(pair):
    """The same pair in float64, for iterated comparisons (numerics.py)."""
    madry, ours = pair
    return madry.double(), ours.double()


@pytest.fixture
def images64(images):
    return images.double()


def madry_attack(madry, images, labels, case, steps):
    constraint, _, eps, step_size, targeted, use_best = case
    _, x_adv = madry(images, labels, make_adv=True, constraint=constraint, eps=eps, step_size=step_size,
                     iterations=steps, targeted=targeted, use_best=use_best, random_start=False)
    return x_adv


def our_attack(ours, images, labels, case, steps):
    _, norm, eps, step_size, targeted, use_best = case
    return pgd(ours, images, labels, eps=eps, steps=steps, step_size=step_size, norm=norm,
               targeted=targeted, use_best=use_best)


def check_ten_step_agreement(model, images, labels, got, expected):
    """Raise AssertionError unless ``got`` matches the reference as the docstring says (float64)."""
    assert_float64_iterates_agree(got, expected)
    with torch.no_grad():
        loss_got = F.cross_entropy(model(got), labels, reduction="none")
        loss_expected = F.cross_entropy(model(expected), labels, reduction="none")
    torch.testing.assert_close(loss_got, loss_expected, rtol=OBJECTIVE_RTOL, atol=0.0)


def test_same_logits(pair, images):
    madry, ours = pair
    with torch.no_grad():
        assert torch.allclose(madry(images, with_image=False), ours(images), atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_one_step_agrees_with_madrylab(pair, images, labels, case):
    madry, ours = pair
    got = our_attack(ours, images, labels, case, steps=1)
    expected = madry_attack(madry, images, labels, case, steps=1)
    step_size = case[3]
    assert (got - images).abs().max() > step_size / 10  # the step moved the images
    assert (got - expected).abs().max() < ONE_STEP_ATOL


@pytest.mark.parametrize("case", CASES)
def test_ten_steps_agree_with_madrylab(pair64, images64, labels, case):
    madry, ours = pair64
    got = our_attack(ours, images64, labels, case, steps=10)
    expected = madry_attack(madry, images64, labels, case, steps=10)
    assert (got - images64).abs().max() > case[3] / 10
    check_ten_step_agreement(ours, images64, labels, got, expected)


def test_use_best_matters_in_its_case(pair, images, labels):
    """The long-step case must tell the best iterate from the last, or use_best goes untested."""
    madry, _ = pair
    case = CASES[3]
    last = madry_attack(madry, images, labels, case[:5] + (False,), steps=10)
    best = madry_attack(madry, images, labels, case, steps=10)
    # At least three images end 5% of eps apart: far beyond rounding, a real difference.
    assert ((best - last).flatten(1).norm(dim=1) > 0.05 * case[2]).sum() >= 3


def _too_long_l2_step(x, grad, step_size):
    return attacks.l2_step(x, grad, 1.2 * step_size)


def _unnormalised_l2_step(x, grad, step_size):
    return x + step_size * grad


def _clamp_only_projection(x, x0, eps):
    return torch.clamp(x, 0.0, 1.0)


def _unclamped_l2_projection(x, x0, eps):
    delta = x - x0
    return x0 + delta * torch.clamp(eps / (attacks._per_sample_norm(delta) + 1e-10), max=1.0)


MUTANTS = {
    "step 1.2x too long": (CASES[0], dict(step=_too_long_l2_step)),
    "unnormalised gradient": (CASES[0], dict(step=_unnormalised_l2_step)),
    "no projection onto the ball": (CASES[0], dict(project=_clamp_only_projection)),
    "no clamp to [0, 1]": (CASES[1], dict(project=_unclamped_l2_projection)),
    "flipped sign": (CASES[0], dict(targeted=False)),
    "use_best ignored": (CASES[3], dict(use_best=False)),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_the_check_catches_real_differences(pair64, images64, labels, monkeypatch, mutant):
    madry, ours = pair64
    images = images64
    case, change = MUTANTS[mutant]
    if "step" in change or "project" in change:
        step, project = attacks._STEPS["l2"]
        monkeypatch.setitem(attacks._STEPS, "l2", (change.get("step", step), change.get("project", project)))
    _, norm, eps, step_size, targeted, use_best = case
    got = pgd(ours, images, labels, eps=eps, steps=10, step_size=step_size, norm=norm,
              targeted=change.get("targeted", targeted), use_best=change.get("use_best", use_best))
    expected = madry_attack(madry, images, labels, case, steps=10)
    with pytest.raises(AssertionError):
        check_ten_step_agreement(ours, images, labels, got, expected)
