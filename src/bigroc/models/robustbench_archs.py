"""The CIFAR networks of RobustBench's model zoo, with its parameter names.

Each class takes normalised images (whatever the model was trained on: see
:mod:`bigroc.models.robustbench`, which puts the normalisation in front) and returns
logits; the names of parameters and buffers are RobustBench's, so its checkpoints load
with ``strict=True``. Every class has a ``num_classes`` attribute, as the framework's
classifiers do. The fifth family, the CIFAR ResNet of MadryLab (RobustBench's
``ResNet``: ``Engstrom2019Robustness``, ``Augustin2020Adversarial``,
``Sehwag2021Proxy_R18``), is :class:`bigroc.models.resnet.CifarResNet` at width 1.

- :class:`DMWideResNet`: DeepMind's WideResNet (Gowal et al. 2020, Rebuffi et al. 2021,
  Wang et al. 2023): pre-activation blocks, TensorFlow "SAME" padding on the first
  convolution of each block, SiLU (= Swish, x * sigmoid(x)) activations.
- :class:`DMPreActResNet`: DeepMind's pre-activation ResNet-18/34 (3x3 projections).
- :class:`WideResNet`: the TRADES WideResNet (Zhang et al. 2019) most L2 entries use.
- :class:`PreActResNet`: Kuang Liu's pre-activation ResNet (Rice et al. 2020).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _same_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding before a 3x3 convolution with ``padding=0``."""
    return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


def _conv3x3(c_in: int, c_out: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=padding, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


def _wide_channels(depth: int, width: int) -> tuple[list[int], int]:
    """Stage widths (16, 16w, 32w, 64w) and blocks per stage of a WideResNet-``depth``-``width``."""
    if depth < 10 or (depth - 4) % 6 or width < 1:
        raise ValueError(f"a WideResNet needs depth = 6n + 4 >= 10 and width >= 1, got depth {depth}, width {width}")
    return [16, 16 * width, 32 * width, 64 * width], (depth - 4) // 6


class _DMBlock(nn.Module):
    """BN -> act -> conv (stride, SAME) -> BN -> act -> conv, plus the input or a 1x1
    projection of the activated input where the width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: type[nn.Module]) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.batchnorm_0, self.relu_0 = nn.BatchNorm2d(c_in), act()
        self.conv_0 = _conv3x3(c_in, c_out, stride, padding=0)
        self.batchnorm_1, self.relu_1 = nn.BatchNorm2d(c_out), act()
        self.conv_1 = _conv3x3(c_out, c_out)
        self.has_shortcut, self.stride = c_in != c_out, stride
        if self.has_shortcut:
            self.shortcut = _conv1x1(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu_0(self.batchnorm_0(x))
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(_same_pad(a, self.stride)))))
        return (self.shortcut(a) if self.has_shortcut else x) + out


class _DMBlockGroup(nn.Module):
    def __init__(self, count: int, c_in: int, c_out: int, stride: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.block = nn.Sequential(*(_DMBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, act)
                                     for i in range(count)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DMWideResNet(nn.Module):
    """DeepMind's WideResNet-``depth``-``width``.

    Shape:
        x: (N, 3, 32, 32) normalised; returns (N, num_classes) logits.
    """

    def __init__(self, *, depth: int = 28, width: int = 10, num_classes: int = 10, activation: str = "silu") -> None:
        super().__init__()
        act = _activation(activation)
        channels, count = _wide_channels(depth, width)
        self.num_classes, self.num_channels = num_classes, channels[3]
        self.init_conv = _conv3x3(3, channels[0])
        self.layer = nn.Sequential(*(_DMBlockGroup(count, channels[i], channels[i + 1], 1 if i == 0 else 2, act)
                                     for i in range(3)))
        self.batchnorm, self.relu = nn.BatchNorm2d(channels[3]), act()
        self.logits = nn.Linear(channels[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.batchnorm(self.layer(self.init_conv(x))))
        return self.logits(F.avg_pool2d(out, 8).flatten(1))


class _DMPreActBlock(nn.Module):
    """BN -> act -> conv (stride, SAME) -> BN -> act -> conv, plus the input or a 3x3
    (SAME) projection of the raw input."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.batchnorm_0, self.relu_0 = nn.BatchNorm2d(c_in), act()
        self.conv_2d_1 = _conv3x3(c_in, c_out, stride, padding=0)
        self.batchnorm_1, self.relu_1 = nn.BatchNorm2d(c_out), act()
        self.conv_2d_2 = _conv3x3(c_out, c_out)
        self.has_shortcut, self.stride = stride != 1 or c_in != c_out, stride
        if self.has_shortcut:
            self.shortcut = _conv3x3(c_in, c_out, stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(_same_pad(x, self.stride)) if self.has_shortcut else x
        out = self.conv_2d_1(_same_pad(self.relu_0(self.batchnorm_0(x)), self.stride))
        return self.conv_2d_2(self.relu_1(self.batchnorm_1(out))) + skip


class DMPreActResNet(nn.Module):
    """DeepMind's pre-activation ResNet-18 or -34 (64-128-256-512 channels).

    Shape:
        x: (N, 3, 32, 32) normalised; returns (N, num_classes) logits.
    """

    COUNTS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self, *, depth: int = 18, num_classes: int = 10, activation: str = "silu") -> None:
        super().__init__()
        if depth not in self.COUNTS:
            raise ValueError(f"DMPreActResNet depth must be 18 or 34, got {depth}")
        act = _activation(activation)
        self.num_classes = num_classes
        self.conv_2d = _conv3x3(3, 64)
        c_in = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), self.COUNTS[depth])):
            blocks = [_DMPreActBlock(c_in if j == 0 else planes, planes, 2 if i > 0 and j == 0 else 1, act)
                      for j in range(count)]
            setattr(self, f"layer_{i}", nn.Sequential(*blocks))
            c_in = planes
        self.batchnorm, self.relu = nn.BatchNorm2d(512), act()
        self.logits = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer_3(self.layer_2(self.layer_1(self.layer_0(self.conv_2d(x)))))
        return self.logits(F.avg_pool2d(self.relu(self.batchnorm(out)), 4).flatten(1))


class _WideBlock(nn.Module):
    """BN -> ReLU -> conv (stride) -> BN -> ReLU -> conv, plus the input or a 1x1
    projection of the activated input where the width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(c_in), nn.ReLU()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn2, self.relu2 = nn.BatchNorm2d(c_out), nn.ReLU()
        self.conv2 = _conv3x3(c_out, c_out)
        self.equal_in_out = c_in == c_out
        if not self.equal_in_out:
            self.convShortcut = _conv1x1(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        return (x if self.equal_in_out else self.convShortcut(a)) + out


class _WideStage(nn.Module):
    def __init__(self, count: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(_WideBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                                     for i in range(count)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """The TRADES WideResNet-``depth``-``widen_factor`` (ReLU).

    Shape:
        x: (N, 3, 32, 32) as the model was trained (normalised or [0, 1]); returns
        (N, num_classes) logits.
    """

    def __init__(self, *, depth: int = 28, widen_factor: int = 10, num_classes: int = 10) -> None:
        super().__init__()
        channels, count = _wide_channels(depth, widen_factor)
        self.num_classes, self.nChannels = num_classes, channels[3]
        self.conv1 = _conv3x3(3, channels[0])
        for i in range(3):
            setattr(self, f"block{i + 1}", _WideStage(count, channels[i], channels[i + 1], 1 if i == 0 else 2))
        self.bn1, self.relu = nn.BatchNorm2d(channels[3]), nn.ReLU()
        self.fc = nn.Linear(channels[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.avg_pool2d(self.relu(self.bn1(out)), 8).flatten(1))


class _PreActBlock(nn.Module):
    """BN -> ReLU -> conv (stride) -> BN -> ReLU -> conv, plus the input or a 1x1
    projection (of the activated input, or of the raw one)."""

    def __init__(self, c_in: int, planes: int, stride: int, project_activated: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = _conv3x3(c_in, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.has_shortcut, self.project_activated = stride != 1 or c_in != planes, project_activated
        if self.has_shortcut:
            self.shortcut = nn.Sequential(_conv1x1(c_in, planes, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        skip = self.shortcut(a if self.project_activated else x) if self.has_shortcut else x
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + skip


class PreActResNet(nn.Module):
    """The pre-activation ResNet (64-128-256-512 channels; ``num_blocks`` (2, 2, 2, 2): -18).

    ``bn_before_fc``: a final BN + ReLU before the pool (RobustBench's ``bn``).
    ``project_activated``: the projection shortcut reads the activated input (RobustBench's
    ``PreActBlockV2``, or ``PreActBlock(out_shortcut=True)``), else the raw one.

    Shape:
        x: (N, 3, 32, 32) normalised; returns (N, num_classes) logits.
    """

    def __init__(self, *, num_blocks: Sequence[int] = (2, 2, 2, 2), num_classes: int = 10,
                 bn_before_fc: bool = True, project_activated: bool = True) -> None:
        super().__init__()
        if len(num_blocks) != 4 or min(num_blocks) < 1:
            raise ValueError(f"num_blocks must be four counts >= 1, got {list(num_blocks)}")
        self.num_classes, self.bn_before_fc = num_classes, bn_before_fc
        self.conv1 = _conv3x3(3, 64)
        c_in = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            blocks = [_PreActBlock(c_in if j == 0 else planes, planes, 2 if i > 0 and j == 0 else 1, project_activated)
                      for j in range(count)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = planes
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.bn_before_fc:
            out = F.relu(self.bn(out))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))
