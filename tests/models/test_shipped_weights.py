"""The robust classifier that ships in the package is real: accurate and robust."""

from __future__ import annotations

import pytest
import torch

from bigroc.attacks import madry_step_size, pgd
from bigroc.data import read_cifar10
from bigroc.models import attack_ready, load_classifier, shipped_classifier


@pytest.mark.parametrize("name, clean_min, robust_min", [
    ("classifier_cifar10_l2", 0.75, 0.54),        # sidecar: 84.0% / 63.2% on the full test split
    ("classifier_cifar10_l2_small", 0.62, 0.42),  # sidecar: 73.7% / 55.0%
])
def test_shipped_classifiers_are_accurate_and_robust_on_cifar10(cifar_root, name, clean_min, robust_min):
    classifier = load_classifier(shipped_classifier(name))
    meta = classifier.meta
    assert meta["dataset"] == "JPEG-rebuilt CIFAR-10" and meta["test_images"] == 10_000
    assert meta["metrics"]["test/adv_acc@0.5"] > robust_min + 0.05
    x, y = read_cifar10(cifar_root, "test")
    x, y = x[:200].float() / 255, y[:200]
    fast = attack_ready(classifier)
    with torch.no_grad():
        clean = (fast(x).argmax(1) == y).float().mean().item()
    x_adv = pgd(fast, x, y, eps=0.5, steps=20, step_size=madry_step_size(0.5, 20), targeted=False)
    with torch.no_grad():
        robust = (fast(x_adv).argmax(1) == y).float().mean().item()
    # The sidecar's full-test-set figures within the noise of 200 images (~3.5 points each).
    assert clean > clean_min and robust > robust_min and clean > robust


def test_shipped_scheme_reads_the_same_file():
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_classifier("shipped:classifier_cifar10_l2")(x),
                           load_classifier(shipped_classifier())(x))


def test_unknown_shipped_name_is_refused():
    with pytest.raises(FileNotFoundError, match="no shipped weights named 'nope'"):
        shipped_classifier("nope")
