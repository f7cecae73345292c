"""Inception features of a few real CIFAR-10 test images, computed once per session.

The network runs at a handful of images per second on a small CPU, so the whole folder
shares 40 images' features: two disjoint real sets of 20.
"""

from __future__ import annotations

import pytest
import torch

from bigroc.data import read_cifar10
from bigroc.metrics import InceptionFeatures

NUM_REAL = 40


@pytest.fixture(scope="session")
def inception() -> InceptionFeatures:
    return InceptionFeatures()


@pytest.fixture(scope="session")
def real_images(cifar_root) -> torch.Tensor:
    x, _ = read_cifar10(cifar_root, "test")
    return x[:NUM_REAL].clone()


@pytest.fixture(scope="session")
def real_features(inception, real_images) -> torch.Tensor:
    return inception(real_images)
