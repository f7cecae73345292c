"""Architectures: parameter names and shapes equal to the checkpoints users bring."""

from __future__ import annotations

import pytest
import torch

from bigroc.models import build_classifier


def shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("depth,factory", [(18, "ResNet18"), (50, "ResNet50")])
@pytest.mark.parametrize("width", [1.0, 0.25])
def test_cifar_resnet_matches_madrylab(robustness, depth, factory, width):
    reference = getattr(robustness.cifar_models, factory)(wm=width)
    ours = build_classifier(f"resnet{depth}", width=width).model
    assert shapes(ours) == shapes(reference)


def test_imagenet_resnet50_matches_the_standard_layout(madry_imagenet_resnet):
    reference = madry_imagenet_resnet.resnet50()
    ours = build_classifier("imagenet_resnet50", num_classes=1000).model
    assert shapes(ours) == shapes(reference)
    assert sum(p.numel() for p in ours.parameters()) == 25_557_032  # ResNet-50's known size


@pytest.mark.parametrize(
    "arch,size,num_classes",
    [("resnet18", 32, 10), ("resnet50", 32, 10), ("resnet34", 32, 100), ("imagenet_resnet50", 64, 1000)],
)
def test_forward_shapes(arch, size, num_classes):
    model = build_classifier(arch, num_classes=num_classes, width=0.125).eval()
    assert model(torch.rand(2, 3, size, size)).shape == (2, num_classes)
    assert model.num_classes == num_classes


def test_width_multiplier_scales_every_stage():
    net = build_classifier("resnet18", width=0.25).model
    assert [net.conv1.out_channels] + [getattr(net, f"layer{i}")[0].conv1.out_channels for i in (2, 3, 4)] == [16, 32, 64, 128]
    assert sum(p.numel() for p in net.parameters()) == 701_466


def test_resize_inside_the_classifier_is_differentiable():
    model = build_classifier("imagenet_resnet50", num_classes=1000, width=0.125, input_size=64).eval()
    x = torch.rand(2, 3, 96, 96, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert x.grad.shape == x.shape and x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["resnet19", "vgg16", "imagenet_vit"])
def test_unknown_arch_is_named(arch):
    with pytest.raises(ValueError, match="unknown classifier arch"):
        build_classifier(arch)
