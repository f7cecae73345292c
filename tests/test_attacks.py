"""Properties of the PGD engine: the ball, the range, the objective, the model's state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bigroc.attacks import l2_project, linf_project, pgd
from numerics import assert_float64_iterates_agree

NORM_EPS = [("l2", 0.5), ("linf", 8 / 255)]


def distance(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    d = (a - b).flatten(1)
    return d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)


@pytest.mark.parametrize("norm,eps", NORM_EPS)
@pytest.mark.parametrize("random_start", [False, True])
def test_stays_in_ball_and_in_range(tiny_classifier, images, labels, norm, eps, random_start):
    # Steps twice the radius push past the edge, so the projection must act.
    x_adv = pgd(tiny_classifier, images, labels, eps=eps, steps=4, step_size=2 * eps,
                norm=norm, random_start=random_start)
    dist = distance(x_adv, images, norm)
    assert (dist <= eps * (1 + 1e-5)).all()
    assert dist.max() > 0.9 * eps
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("norm,eps", NORM_EPS)
def test_eps_zero_is_identity(tiny_classifier, images, labels, norm, eps):
    x_adv = pgd(tiny_classifier, images, labels, eps=0.0, steps=3, step_size=0.1, norm=norm)
    assert torch.equal(x_adv, images)


@pytest.mark.parametrize("project,eps", [(l2_project, 0.7), (linf_project, 0.05)])
def test_projection_is_idempotent_and_keeps_points_inside(project, eps, images):
    far = images + torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    once = project(far, images, eps)
    assert torch.allclose(project(once, images, eps), once, atol=1e-7)
    inside = project(images + 1e-3 * torch.sign(torch.randn_like(images)), images, 1.0)
    assert torch.allclose(project(inside, images, 1.0), inside, atol=1e-7)


def probs_of(model, x, y):
    with torch.no_grad():
        return F.softmax(model(x), dim=1).gather(1, y[:, None]).squeeze(1)


@pytest.mark.parametrize("norm,eps", NORM_EPS)
def test_targeted_attack_raises_target_probability(tiny_classifier, images, labels, norm, eps):
    x_adv = pgd(tiny_classifier, images, labels, eps=eps, steps=5, step_size=eps / 4, norm=norm)
    assert (probs_of(tiny_classifier, x_adv, labels) > probs_of(tiny_classifier, images, labels)).all()


def test_untargeted_attack_lowers_label_probability(tiny_classifier, images, labels):
    x_adv = pgd(tiny_classifier, images, labels, eps=0.5, steps=5, step_size=0.125, targeted=False)
    assert (probs_of(tiny_classifier, x_adv, labels) < probs_of(tiny_classifier, images, labels)).all()


@pytest.mark.parametrize("norm,eps", NORM_EPS)
def test_result_does_not_depend_on_batch(tiny_classifier, images, labels, norm, eps):
    kwargs = dict(eps=eps, steps=5, step_size=eps / 4, norm=norm)
    model, images = tiny_classifier.double(), images.double()  # numerics.py: iterates compare in float64
    whole = pgd(model, images, labels, **kwargs)
    parts = torch.cat([pgd(model, images[i : i + 1], labels[i : i + 1], **kwargs) for i in range(len(images))])
    # Another batch shape may take other kernels: equal up to rounding, which float64 keeps far below the bound.
    assert_float64_iterates_agree(parts, whole)


def test_restores_each_module_mode_and_leaves_weights_alone(tiny_classifier, images, labels):
    model = tiny_classifier.train()
    model.model.layer2.eval()  # a mixed state must come back exactly
    modes = {name: m.training for name, m in model.named_modules()}
    bn = model.model.bn1
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    pgd(model, images, labels, eps=0.5, steps=3, step_size=0.2)
    assert {name: m.training for name, m in model.named_modules()} == modes
    # Eval mode during the attack: BatchNorm statistics did not move.
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.num_batches_tracked, stats[2])
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_random_start_draws_from_the_generator(tiny_classifier, images, labels):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return pgd(tiny_classifier, images, labels, eps=0.5, steps=1, step_size=0.0,
                   random_start=True, generator=g)
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    assert torch.allclose(distance(run(0), images, "l2"), torch.tensor(0.5), atol=0.05)


BAD_INPUTS = [
    (lambda x, y: (x[0], y), {}, "4-D"),
    (lambda x, y: (x[:, :1], y), {}, "3 channels"),
    (lambda x, y: ((x * 255).to(torch.uint8), y), {}, "float"),
    (lambda x, y: (x * 2 - 1, y), {}, r"\[0, 1\]"),
    (lambda x, y: (torch.where(x > 0.5, float("nan"), x), y), {}, "NaN"),
    (lambda x, y: (x, y[:-1]), {}, "one label per image"),
    (lambda x, y: (x, y + 10), {}, "10 classes"),
    (lambda x, y: (x, y.float()), {}, "integer"),
    (lambda x, y: (x, y), {"eps": -0.1}, "eps"),
    (lambda x, y: (x, y), {"steps": 0}, "steps"),
    (lambda x, y: (x, y), {"step_size": float("nan")}, "step_size"),
    (lambda x, y: (x, y), {"norm": "l1"}, "norm"),
]


@pytest.mark.parametrize("make,override,message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(tiny_classifier, images, labels, make, override, message):
    x, y = make(images, labels)
    kwargs = dict(eps=0.5, steps=2, step_size=0.1, norm="l2") | override
    with pytest.raises(ValueError, match=message):
        pgd(tiny_classifier, x, y, **kwargs)


def test_use_best_returns_the_lowest_loss_iterate(tiny_classifier, images, labels):
    # A step far larger than the ball makes the last iterate a poor one for some images.
    kwargs = dict(eps=2.0, step_size=1.5)
    iterates = [images] + [pgd(tiny_classifier, images, labels, steps=k, **kwargs) for k in range(1, 7)]
    best = pgd(tiny_classifier, images, labels, steps=6, use_best=True, **kwargs)
    p_iterates = torch.stack([probs_of(tiny_classifier, x, labels) for x in iterates])  # (iterate, image)
    p_best = probs_of(tiny_classifier, best, labels)
    assert torch.allclose(p_best, p_iterates.max(0).values, atol=1e-6)  # the best of every iterate
    assert (p_best > p_iterates[-1] + 1e-5).any()  # and not the last one, for some image (ignored: 0)
    assert ((best - images).flatten(1).norm(dim=1) <= 2.0 + 1e-5).all()


def test_pgd_runs_inside_no_grad_and_refuses_inference_mode(tiny_classifier, images, labels):
    expected = pgd(tiny_classifier, images, labels, eps=0.5, steps=2, step_size=0.25)
    with torch.no_grad():  # Lightning's evaluation loops
        got = pgd(tiny_classifier, images, labels, eps=0.5, steps=2, step_size=0.25)
    torch.testing.assert_close(got, expected)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        pgd(tiny_classifier, images, labels, eps=0.5, steps=2, step_size=0.25)
