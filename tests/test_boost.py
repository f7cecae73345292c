"""BIGRoC and the logit debiasing: the algorithm's contract and its errors."""

from __future__ import annotations

import pytest
import torch

from bigroc.attacks import pgd
from bigroc.boost import bigroc, debias_shift, predict_targets


def test_debias_shift_gives_every_class_the_same_mean_logit():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10, generator=g) + torch.linspace(-3, 3, 10)  # biased classes
    for a in (1.0, 0.0, -2.5):
        shifted = logits + debias_shift(logits, a=a)
        assert torch.allclose(shifted.mean(dim=0), torch.full((10,), a), atol=1e-5)


def test_debias_shift_balances_predicted_labels_of_biased_logits():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2000, 10, generator=g) + 3 * (torch.arange(10) == 4)  # class 4 favoured
    before = torch.bincount(logits.argmax(1), minlength=10)
    after = torch.bincount((logits + debias_shift(logits)).argmax(1), minlength=10)
    assert before[4] > 1000 and after.max() < 400 and after.min() > 100


@pytest.mark.parametrize("bad", [torch.zeros(10), torch.zeros(0, 10), torch.full((3, 2), float("inf"))])
def test_debias_shift_rejects_bad_logits(bad):
    with pytest.raises(ValueError, match="logits"):
        debias_shift(bad)


def test_default_step_size_is_eps_over_steps(tiny_classifier, images, labels):
    x_boost, y = bigroc(tiny_classifier, images, labels, eps=0.6, steps=3)
    expected = pgd(tiny_classifier, images, labels, eps=0.6, steps=3, step_size=0.2)
    assert torch.equal(x_boost, expected) and torch.equal(y, labels)


def test_boosting_stays_in_ball_and_raises_target_probability(tiny_classifier, images, labels):
    x_boost, _ = bigroc(tiny_classifier, images, labels, eps=0.5, steps=5)
    assert ((x_boost - images).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    with torch.no_grad():
        p0 = tiny_classifier(images).softmax(1).gather(1, labels[:, None])
        p1 = tiny_classifier(x_boost).softmax(1).gather(1, labels[:, None])
    assert (p1 > p0).all()


def test_unconditional_targets_are_the_shifted_argmax(tiny_classifier, images):
    with torch.no_grad():
        logits = tiny_classifier(images)
    _, y = bigroc(tiny_classifier, images, eps=0.1, steps=1)
    assert torch.equal(y, logits.argmax(1))
    shift = torch.zeros(10)
    shift[7] = 1e3  # overwhelms any logit: every target becomes class 7
    _, y = bigroc(tiny_classifier, images, eps=0.1, steps=1, logit_shift=shift)
    assert (y == 7).all()
    assert torch.equal(predict_targets(tiny_classifier, images, shift), y)


def test_bad_shift_and_bad_arguments_raise(tiny_classifier, images, labels):
    with pytest.raises(ValueError, match=r"logit_shift must have shape \(10,\)"):
        bigroc(tiny_classifier, images, eps=0.5, logit_shift=torch.zeros(9))
    with pytest.raises(ValueError, match="not both"):
        bigroc(tiny_classifier, images, labels, eps=0.5, logit_shift=torch.zeros(10))
    with pytest.raises(ValueError, match="eps"):
        bigroc(tiny_classifier, images, labels, eps=-1.0)
    with pytest.raises(ValueError, match="steps"):
        bigroc(tiny_classifier, images, labels, eps=0.5, steps=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        bigroc(tiny_classifier, images, labels + 1, eps=0.5)
    with pytest.raises(ValueError, match="one label per image"):
        bigroc(tiny_classifier, images, labels[:2], eps=0.5)
    with pytest.raises(ValueError, match="4-D"):
        bigroc(tiny_classifier, images[0], eps=0.5)


def test_balanced_shift_balances_labels_better_than_the_mean_shift():
    from bigroc.boost import balanced_shift, label_balance

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1000, 10, generator=g) * 2 + torch.linspace(0, 3, 10)
    logits[:, 3] += torch.randn(1000, generator=g) * 3  # one class with spread-out logits
    tv = {name: label_balance((logits + d).argmax(1), 10)
          for name, d in [("none", torch.zeros(10)), ("mean", debias_shift(logits)),
                          ("balanced", balanced_shift(logits))]}
    assert tv["mean"] < tv["none"]
    assert tv["balanced"] < 0.02 < tv["mean"]


def test_label_balance_extremes():
    from bigroc.boost import label_balance

    assert label_balance(torch.arange(10), 10) == 0
    assert label_balance(torch.zeros(10, dtype=torch.long), 10) == pytest.approx(0.9)
