"""ImageNet classifiers from the files users bring: MadryLab's robust ResNet-50 checkpoints
and plain (torchvision-layout) state dicts, with ImageNet normalisation inside the wrapper.

No ImageNet weights exist here: each test writes randomly initialised weights in the
layout of the real files and checks that loading gives back the same function.
"""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace

import pytest
import torch

from bigroc.models import build_classifier, classifier_from_config, load_classifier, save_classifier
from bigroc.models.classifier import IMAGENET_MEAN, IMAGENET_STD
from tiny_models import warm_batchnorm

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def logits(model, x=X):
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def warmed_imagenet():
    torch.manual_seed(0)
    return warm_batchnorm(build_classifier("imagenet_resnet50", num_classes=1000, width=0.0625), size=64)


@pytest.fixture
def tiny_imagenet(warmed_imagenet):
    return copy.deepcopy(warmed_imagenet)


def madry_layout(classifier) -> dict[str, torch.Tensor]:
    """The keys of MadryLab's ``DataParallel(AttackerModel)`` state dict."""
    net, norm = classifier.model.state_dict(), classifier.normalizer.state_dict()
    state = {}
    for prefix, part in (("normalizer.", norm), ("model.", net), ("attacker.normalize.", norm),
                         ("attacker.model.", net)):
        state.update({f"module.{prefix}{k}": v.clone() for k, v in part.items()})
    return state


@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_madry_imagenet_checkpoint_maps_onto_the_wrapper(tiny_imagenet, tmp_path, key):
    path = tmp_path / "imagenet_l2_3_0.pt"
    torch.save({key: madry_layout(tiny_imagenet), "epoch": 90, "schedule": None}, path)
    loaded = load_classifier(path)
    assert loaded.model.num_classes == 1000 and hasattr(loaded.model, "fc") and loaded.model.depth == 50
    assert torch.allclose(loaded.normalizer.new_mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(loaded.normalizer.new_std.flatten(), torch.tensor(IMAGENET_STD))
    assert torch.equal(logits(loaded), logits(tiny_imagenet))


def test_madry_imagenet_resnet50_itself_loads_with_equal_logits(madry_imagenet_resnet, robustness, tmp_path):
    """MadryLab's own ImageNet ResNet-50 behind its own AttackerModel, saved as they save it."""
    from robustness.attacker import AttackerModel

    torch.manual_seed(0)
    stats = SimpleNamespace(mean=torch.tensor(IMAGENET_MEAN), std=torch.tensor(IMAGENET_STD))
    reference = AttackerModel(madry_imagenet_resnet.resnet50(), stats).train()
    with torch.no_grad():
        reference(torch.rand(4, 3, 64, 64), with_image=False)  # non-trivial BN statistics
    reference.eval()
    path = tmp_path / "imagenet_linf_4.pt"
    torch.save({"model": {"module." + k: v for k, v in reference.state_dict().items()}, "epoch": 90}, path)
    loaded = load_classifier(path)
    with torch.no_grad():
        expected = reference(X, with_image=False)
    assert torch.allclose(logits(loaded), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("batches_tracked", [True, False])
def test_torchvision_layout_state_dict_loads_with_imagenet_normalisation(tiny_imagenet, tmp_path,
                                                                         batches_tracked):
    state = tiny_imagenet.model.state_dict()
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
            "layer4.2.bn3.weight", "fc.weight", "fc.bias"} <= set(state)  # torchvision's names
    if not batches_tracked:  # files older than PyTorch 0.4.1 have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet50_plain.pth"
    torch.save(state, path)
    loaded = load_classifier(path, input_size=48)
    assert torch.allclose(loaded.normalizer.new_mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert loaded.input_size == 48
    tiny_imagenet.input_size = 48
    assert torch.equal(logits(loaded), logits(tiny_imagenet))


def test_config_target_loads_an_imagenet_checkpoint_without_warning(tiny_imagenet, tmp_path):
    path = tmp_path / "madry.pt"
    torch.save({"model": madry_layout(tiny_imagenet)}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = classifier_from_config(arch="imagenet_resnet50", num_classes=1000, width=0.0625, input_size=None,
                                        checkpoint=str(path))
    assert loaded.input_size is None and torch.equal(logits(loaded), logits(tiny_imagenet))


def test_export_keeps_input_size_and_normalisation(tiny_imagenet, tmp_path):
    tiny_imagenet.input_size = 56
    save_classifier(tiny_imagenet, tmp_path / "clf.safetensors", meta={"dataset": "imagenet"})
    loaded = load_classifier(tmp_path / "clf.safetensors")
    assert loaded.input_size == 56 and loaded.meta["arch"] == "imagenet_resnet50"
    assert torch.equal(logits(loaded), logits(tiny_imagenet))
    assert load_classifier(tmp_path / "clf.safetensors", input_size=64).input_size == 64
