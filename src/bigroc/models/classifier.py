"""The classifier every part of the program uses: [0, 1] images in, logits out.

Normalisation (mean/std) lives inside, as in MadryLab's ``AttackerModel``; its buffers are
named ``normalizer.new_mean`` / ``normalizer.new_std`` and the network sits under
``model``, so a MadryLab state dict maps onto :class:`Classifier` by dropping ``module.``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bigroc.models.resnet import DEPTHS, CifarResNet, ImageNetResNet

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FAMILIES = {"cifar": CifarResNet, "imagenet": ImageNetResNet}
DEFAULT_STATS = {"cifar": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}


class InputNormalize(nn.Module):
    """(x - mean) / std per channel, with MadryLab's buffer names and (3, 1, 1) shapes."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("new_mean", torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1))
        self.register_buffer("new_std", torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.new_mean) / self.new_std


class Classifier(nn.Module):
    """A network behind its normaliser (and, optionally, a resize).

    Shape:
        x: (N, 3, H, W) float in [0, 1]; returns (N, num_classes) logits.

    ``input_size``: when set and the images differ, they are resized bilinearly (with
    anti-aliasing when shrinking) to ``input_size`` x ``input_size`` before the network.
    The resize is differentiable, so boosting still happens at the images' own size.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.normalizer = InputNormalize(mean, std)
        self.model = model
        self.input_size = input_size

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size,) * 2:
            shrink = x.shape[-1] > self.input_size
            x = F.interpolate(
                x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=shrink
            )
        return self.model(self.normalizer(x))


def arch_name(family: str, depth: int) -> str:
    """``resnet50`` for the CIFAR family (MadryLab's names), ``imagenet_resnet50`` else."""
    return f"resnet{depth}" if family == "cifar" else f"{family}_resnet{depth}"


def parse_arch(arch: str) -> tuple[str, int]:
    """Inverse of :func:`arch_name`: ``"imagenet_resnet50"`` -> ("imagenet", 50)."""
    family, _, name = arch.rpartition("_")
    family = family or "cifar"
    depth = name.removeprefix("resnet")
    if family not in FAMILIES or not name.startswith("resnet") or not depth.isdigit() or int(depth) not in DEPTHS:
        raise ValueError(
            f"unknown classifier arch {arch!r}; use resnet18/34/50/101/152 (CIFAR, MadryLab's) "
            "or imagenet_resnet18/34/50/101/152"
        )
    return family, int(depth)


def build_classifier(
    arch: str,
    *,
    num_classes: int = 10,
    width: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
) -> Classifier:
    """A freshly initialised classifier, e.g. ``build_classifier("resnet18", width=0.25)``.

    ``mean``/``std`` default to CIFAR-10's (MadryLab's values) for CIFAR archs and to
    ImageNet's for ``imagenet_*`` archs.
    """
    family, depth = parse_arch(arch)
    default_mean, default_std = DEFAULT_STATS[family]
    net = FAMILIES[family](depth=depth, num_classes=num_classes, width=width)
    return Classifier(
        net,
        mean=default_mean if mean is None else mean,
        std=default_std if std is None else std,
        input_size=input_size,
    )
