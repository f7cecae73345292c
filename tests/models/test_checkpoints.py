"""Checkpoint loading and export: every format, and every way a file can be wrong."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest
import torch

from bigroc.models import build_classifier, classifier_from_config, infer_arch, load_classifier, save_classifier
from bigroc.models.classifier import CIFAR10_MEAN

X = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def logits(model, x=X):
    with torch.no_grad():
        return model.eval()(x)


def test_export_round_trips_with_its_sidecar(tiny_classifier, tmp_path):
    path = tmp_path / "clf.safetensors"
    side = save_classifier(tiny_classifier, path, meta={"dataset": "cifar10", "train_eps": 0.5,
                                                        "val/clean_acc": 0.7})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.json", "clf.safetensors"]
    sidecar = json.loads(side.read_text())
    assert sidecar["arch"] == "resnet18" and sidecar["width"] == 0.125 and sidecar["num_classes"] == 10
    assert sidecar["train_eps"] == 0.5
    loaded = load_classifier(path)
    assert torch.equal(logits(loaded), logits(tiny_classifier))
    assert loaded.meta["val/clean_acc"] == 0.7 and not loaded.training


def test_export_rejects_a_wrong_suffix(tiny_classifier, tmp_path):
    with pytest.raises(ValueError, match=".safetensors"):
        save_classifier(tiny_classifier, tmp_path / "clf.pt", meta={})


@pytest.mark.parametrize("prefix", ["", "module."])
def test_plain_state_dict_loads_with_default_normalisation(tiny_classifier, tmp_path, prefix):
    path = tmp_path / "plain.pt"
    torch.save({prefix + k: v for k, v in tiny_classifier.model.state_dict().items()}, path)
    loaded = load_classifier(path)
    assert torch.allclose(loaded.normalizer.new_mean.flatten(), torch.tensor(CIFAR10_MEAN))
    assert torch.equal(logits(loaded), logits(tiny_classifier))


def test_plain_state_dict_takes_the_given_normalisation(tiny_classifier, tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(tiny_classifier.model.state_dict(), path)
    loaded = load_classifier(path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert torch.equal(loaded.normalizer.new_std.flatten(), torch.full((3,), 0.25))


@pytest.mark.parametrize("arch,width,classes", [("resnet18", 0.25, 10), ("resnet50", 0.125, 100),
                                                ("resnet34", 0.125, 10), ("imagenet_resnet50", 0.125, 1000)])
def test_infer_arch_reads_the_layout_off_the_weights(arch, width, classes):
    net = build_classifier(arch, num_classes=classes, width=width).model
    assert infer_arch(net.state_dict()) == (arch, classes, width)


def test_madry_checkpoint_loads_with_its_normaliser_and_equal_logits(robustness, tmp_path):
    """A checkpoint made the way MadryLab's library saves them: DataParallel(AttackerModel)."""
    import dill
    from robustness.attacker import AttackerModel

    torch.manual_seed(0)
    net = robustness.cifar_models.ResNet50()
    stats = SimpleNamespace(mean=torch.tensor([0.5, 0.4, 0.3]), std=torch.tensor([0.2, 0.25, 0.3]))
    reference = AttackerModel(net, stats)
    reference.train()
    with torch.no_grad():
        reference(torch.rand(8, 3, 32, 32), with_image=False)  # non-trivial BN statistics
    reference.eval()
    state = {"module." + k: v for k, v in reference.state_dict().items()}
    path = tmp_path / "cifar_l2_0_5.pt"
    torch.save({"model": state, "epoch": 150}, path, pickle_module=dill)

    loaded = load_classifier(path)
    assert torch.allclose(loaded.normalizer.new_mean.flatten(), stats.mean)
    with torch.no_grad():
        expected = reference(X, with_image=False)
    assert torch.allclose(logits(loaded), expected, atol=1e-5)


def test_full_pickle_needs_the_named_opt_in(tiny_classifier, tmp_path):
    import dill

    path = tmp_path / "old.pt"
    torch.save({"model": tiny_classifier.state_dict(), "args": argparse.Namespace(eps=0.5)}, path,
               pickle_module=dill)
    with pytest.raises(ValueError, match="allow_unsafe_pickle=True"):
        load_classifier(path)
    with pytest.warns(UserWarning, match="full unpickling"):
        loaded = load_classifier(path, allow_unsafe_pickle=True)
    assert torch.equal(logits(loaded), logits(tiny_classifier))


def test_truncated_files_are_named(tiny_classifier, tmp_path):
    pt, st = tmp_path / "cut.pt", tmp_path / "cut.safetensors"
    torch.save(tiny_classifier.state_dict(), pt)
    save_classifier(tiny_classifier, st, meta={})
    for path in (pt, st):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(ValueError, match=f"{path.name}.*(truncated|not a readable)"):
            load_classifier(path)


def test_foreign_files_say_what_was_expected(tiny_classifier, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pt is not a readable PyTorch checkpoint"):
        load_classifier(text)
    generator_ckpt = tmp_path / "netG.pth"
    torch.save({"model_state_dict": {"l1.weight": torch.zeros(2)}, "global_step": 3}, generator_ckpt)
    with pytest.raises(ValueError, match="netG.pth holds no classifier weights"):
        load_classifier(generator_ckpt)
    other_net = tmp_path / "mlp.pt"
    torch.save({"fc1.weight": torch.zeros(4, 4)}, other_net)
    with pytest.raises(ValueError, match="mlp.pt: not a ResNet state dict"):
        load_classifier(other_net)
    broken = tmp_path / "broken.pt"
    state = tiny_classifier.model.state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(state, broken)
    with pytest.raises(ValueError, match="broken.pt: weights do not fit a resnet18"):
        load_classifier(broken)
    with pytest.raises(FileNotFoundError, match="classifier.checkpoint"):
        load_classifier(tmp_path / "missing.pt")


def test_config_target_builds_or_loads_and_warns_on_mismatch(tiny_classifier, tmp_path):
    fresh = classifier_from_config(arch="resnet50", width=0.125, num_classes=10)
    assert fresh.model.depth == 50
    path = tmp_path / "clf.safetensors"
    save_classifier(tiny_classifier, path, meta={})
    with pytest.warns(UserWarning, match="holds a resnet18"):
        loaded = classifier_from_config(arch="resnet50", checkpoint=str(path))
    assert torch.equal(logits(loaded), logits(tiny_classifier))
