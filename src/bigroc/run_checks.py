"""Checks of a boosting run's inputs, made before anything runs or is written.

Each refusal is one ``ValueError`` naming the input and the fix.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bigroc.attacks import num_classes_of

DEBIAS = ("none", "mean", "balanced")
LABELS = ("auto", "generator", "predicted")
# A CIFAR ResNet's head fits its training size; an ImageNet one pools any size, and was
# trained at 224. Far larger images than these are refused rather than boosted for hours.
NATIVE_SIZE = {"cifar": 32, "imagenet": 224}
MAX_FACTOR = 4


def check_run_inputs(source: nn.Module, classifier: nn.Module, labels: str, debias: str) -> None:
    """Refuse settings that cannot work: label options, and the source against the classifier."""
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if debias not in DEBIAS:
        raise ValueError(f"debias must be one of {', '.join(DEBIAS)}, got {debias!r}")
    if labels == "generator" and not source.conditional:
        raise ValueError("labels=generator needs a conditional source (one that gives labels); "
                         "use labels=predicted or labels=auto")
    height, width = getattr(source, "image_shape", (32, 32))
    k_cls, k_src = num_classes_of(classifier, torch.zeros(1, 3, height, width)), source.num_classes
    if k_cls != k_src:
        raise ValueError(f"the classifier predicts {k_cls} classes but the generator's data has "
                         f"{k_src}; use a classifier trained on the generator's dataset")


def image_cube_diameter(image_shape: tuple[int, int], norm: str) -> float:
    """The largest distance between two RGB images of ``image_shape`` in [0, 1]."""
    height, width = image_shape
    return math.sqrt(3 * height * width) if norm == "l2" else 1.0


def check_eps_fits(eps: float, norm: str, image_shape: tuple[int, int]) -> None:
    """Refuse a radius larger than the image cube: every image would be in every ball."""
    diameter = image_cube_diameter(image_shape, norm)
    if eps > diameter:
        height, width = image_shape
        raise ValueError(f"epsilon={eps:g} is larger than the {norm.upper()} diameter of {width}x{height} RGB images "
                         f"in [0, 1] ({diameter:.4g}, [0, 1] pixel units), so it bounds nothing; use "
                         f"epsilon <= {diameter:.4g} (the paper's CIFAR-10 runs: 0.25 to 2.5)")


def _family(classifier: nn.Module) -> str:
    """``imagenet`` for a 1000-class network, else ``cifar`` (32x32 inputs, any architecture)."""
    return "imagenet" if getattr(classifier, "num_classes", 10) >= 1000 else "cifar"


def check_classifier(classifier: nn.Module, name: str, image_shape: tuple[int, int]) -> None:
    """Finite weights, a usable normaliser, and finite logits on images of ``image_shape``.

    ``name`` (the checkpoint) is what the errors call the classifier. Images far larger
    than the classifier's input are refused before any is made.
    """
    for key, value in classifier.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"classifier {name} has non-finite weights (NaN or inf in {key}); it is damaged or "
                             "its training diverged: use another checkpoint")
    std = getattr(getattr(classifier, "normalizer", None), "new_std", None)
    if std is not None and not (std > 0).all():
        raise ValueError(f"classifier {name} has a normaliser std of {std.flatten().tolist()}: every channel's "
                         "std must be > 0; fix the checkpoint's normalizer.new_std")
    height, width = image_shape
    size = getattr(classifier, "input_size", None) or NATIVE_SIZE[_family(classifier)]
    if max(height, width) > MAX_FACTOR * size:
        raise ValueError(f"the images are {width}x{height}, far larger than the classifier's {size}x{size} input "
                         f"(more than {MAX_FACTOR}x); resize them first")
    probe = torch.full((2, 3, height, width), 0.5)
    probe[1] = torch.linspace(0, 1, height * width).view(1, height, width)
    try:
        with torch.no_grad():
            logits = classifier.eval()(probe)
    except RuntimeError as err:
        raise ValueError(f"classifier {name} cannot take {width}x{height} images ({str(err).splitlines()[0][:120]}); "
                         f"set classifier.input_size={size} to resize them inside the classifier") from None
    if not torch.isfinite(logits).all():
        raise ValueError(f"classifier {name} returns non-finite logits on plain images; check its weights and "
                         "normaliser (use another checkpoint)")
