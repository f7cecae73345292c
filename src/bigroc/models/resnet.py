"""ResNets with the parameter names of the checkpoints users bring.

``CifarResNet`` is MadryLab ``robustness``'s CIFAR architecture: 3x3 stem, no max-pool,
four stages (first strides 1, 2, 2, 2), 4x4 average pool, a ``linear`` head, projection
shortcuts under ``shortcut``. ``ImageNetResNet`` is the standard ImageNet layout shared by
torchvision and MadryLab's ImageNet models: 7x7 stride-2 stem, max-pool, projections under
``downsample``, stride on the 3x3 convolution, global pool, an ``fc`` head.

A ``width`` multiplier scales every stage: ``width=0.25`` gives 16-32-64-128 channels,
a ResNet-18 that trains and boosts at useful speed on a CPU. Both take normalised images
and return logits; :class:`bigroc.models.Classifier` adds the [0, 1] -> normalised step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _projection(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """1x1 conv + BN where the block changes shape; an identity (empty) Sequential else."""
    if stride == 1 and c_in == c_out:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, proj_name: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.proj_name = proj_name
        setattr(self, proj_name, _projection(c_in, planes * self.expansion, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + getattr(self, self.proj_name)(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, proj_name: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.proj_name = proj_name
        setattr(self, proj_name, _projection(c_in, planes * self.expansion, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + getattr(self, self.proj_name)(x))


# depth -> (block, blocks per stage)
DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class _ResNet(nn.Module):
    """Shared stage construction; subclasses add the stem and the head."""

    proj_name = ""

    def __init__(self, depth: int, num_classes: int, width: float) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        widths = [int(w * width) for w in (64, 128, 256, 512)]
        if min(widths) < 1:
            raise ValueError(f"width {width} leaves a stage with no channels; use width >= 1/64")
        self.depth, self.width, self.num_classes = depth, width, num_classes
        self.stem_width = widths[0]
        block, counts = DEPTHS[depth]
        c_in = widths[0]
        for i, (planes, count) in enumerate(zip(widths, counts)):
            blocks = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(c_in, planes, stride, self.proj_name))
                c_in = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.feature_dim = c_in

    def stages(self, out: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))


class CifarResNet(_ResNet):
    """MadryLab's CIFAR ResNet: (N, 3, 32, 32) normalised -> (N, num_classes) logits."""

    proj_name = "shortcut"

    def __init__(self, depth: int = 18, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__(depth, num_classes, width)
        self.conv1 = nn.Conv2d(3, self.stem_width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.stem_width)
        self.linear = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        # MadryLab pools 4x4: the global average at 32x32 input.
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


class ImageNetResNet(_ResNet):
    """Standard ImageNet ResNet: (N, 3, H, W) normalised -> (N, num_classes) logits."""

    proj_name = "downsample"

    def __init__(self, depth: int = 50, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__(depth, num_classes, width)
        self.conv1 = nn.Conv2d(3, self.stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(self.avgpool(out).flatten(1))
