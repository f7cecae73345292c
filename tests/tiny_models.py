"""Helpers shared by test modules (a module of its own: several folders have a conftest.py)."""

from __future__ import annotations

import torch

from bigroc.models import Classifier


def warm_batchnorm(classifier: Classifier, size: int = 32, batches: int = 3) -> Classifier:
    """Run a few training-mode batches so BatchNorm's running statistics are not trivial."""
    classifier.train()
    with torch.no_grad():
        for i in range(batches):
            g = torch.Generator().manual_seed(100 + i)
            classifier(torch.rand(16, 3, size, size, generator=g))
    return classifier.eval()
