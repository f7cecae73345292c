"""The engine against the reference implementation: MadryLab's ``robustness`` Attacker.

Same random CIFAR ResNet, same inputs: the project's ``pgd`` and the library's attack
(``use_best=False``: the last iterate, as BIGRoC uses) must agree to 1e-5.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bigroc.attacks import pgd
from bigroc.models import build_classifier
from bigroc.models.classifier import CIFAR10_MEAN, CIFAR10_STD
from tiny_models import warm_batchnorm


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


def test_same_logits(pair, images):
    madry, ours = pair
    with torch.no_grad():
        assert torch.allclose(madry(images, with_image=False), ours(images), atol=1e-6)


@pytest.mark.parametrize(
    "constraint,norm,eps,step_size,targeted,use_best",
    [
        ("2", "l2", 0.5, 0.1, True, False),
        ("2", "l2", 1.0, 0.1, False, False),
        ("2", "l2", 0.5, 0.1, False, True),  # MadryLab's training default
        ("inf", "linf", 8 / 255, 2 / 255, True, False),
    ],
)
def test_pgd_agrees_with_madrylab_attacker(pair, images, labels, constraint, norm, eps, step_size,
                                           targeted, use_best):
    madry, ours = pair
    _, expected = madry(images, labels, make_adv=True, constraint=constraint, eps=eps,
                        step_size=step_size, iterations=10, targeted=targeted, use_best=use_best,
                        random_start=False)
    got = pgd(ours, images, labels, eps=eps, steps=10, step_size=step_size, norm=norm,
              targeted=targeted, use_best=use_best)
    assert (got - images).abs().max() > step_size / 10  # the attack moved the images
    assert (got - expected).abs().max() < 1e-5
