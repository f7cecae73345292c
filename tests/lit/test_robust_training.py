"""Adversarial training at tiny scale on real CIFAR-10: it works, resumes exactly, exports."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from bigroc.attacks import AttackSpec
from bigroc.data import CIFAR10DataModule
from bigroc.lit import RobustTraining, export_trained
from bigroc.models import build_classifier, load_classifier


def make_module(**overrides) -> RobustTraining:
    torch.manual_seed(0)
    kwargs = dict(attack=AttackSpec(eps=0.5, steps=2, random_start=True), val_eps=[0.5], test_eps=[0.5],
                  eval_steps=5, lr=0.1, schedule="onecycle", seed=0) | overrides
    return RobustTraining(build_classifier("resnet18", width=0.125), **kwargs)


def make_trainer(tmp_path, **overrides) -> L.Trainer:
    kwargs = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                  enable_model_summary=False, inference_mode=False, num_sanity_val_steps=0,
                  limit_val_batches=0, default_root_dir=tmp_path) | overrides
    return L.Trainer(**kwargs)


def test_training_raises_robust_accuracy_above_an_untrained_model(cifar_root, tmp_path):
    data = CIFAR10DataModule(str(cifar_root), batch_size=64, train_size=4096, test_size=500, eval_batch_size=250)
    module = make_module()
    before = make_trainer(tmp_path).test(module, datamodule=data, verbose=False)[0]
    trainer = make_trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    after = trainer.test(module, datamodule=data, verbose=False)[0]
    assert after["test/adv_acc@0.5"] > before["test/adv_acc@0.5"] + 0.05
    assert after["test/clean_acc"] > 0.2 and after["test/clean_acc"] >= after["test/adv_acc@0.5"]


def test_resumed_run_ends_with_the_uninterrupted_weights(cifar_root, tmp_path):
    def data():  # 8 batches an epoch: the checkpoint at step 3 falls mid-epoch
        return CIFAR10DataModule(str(cifar_root), batch_size=32, train_size=256)

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    whole = make_module()
    make_trainer(tmp_path, max_steps=11, callbacks=[ckpt]).fit(whole, datamodule=data())
    resumed = make_module()
    step3 = next((tmp_path / "ckpt").glob("*step=3.ckpt"))
    make_trainer(tmp_path, max_steps=11, enable_checkpointing=False).fit(resumed, datamodule=data(), ckpt_path=step3)
    expected = whole.classifier.state_dict()
    for name, value in resumed.classifier.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_export_round_trips_and_madrylab_reads_its_layout(cifar_root, tmp_path, robustness):
    from types import SimpleNamespace

    from robustness.attacker import AttackerModel

    data = CIFAR10DataModule(str(cifar_root), batch_size=32, train_size=64, test_size=50)
    module = make_module()
    trainer = make_trainer(tmp_path, max_steps=2, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    metrics = trainer.test(module, datamodule=data, verbose=False)[0]
    path = export_trained(module, data, trainer, out_dir=tmp_path, test_metrics=metrics,
                          train_seconds=1.0, madry_layout=True)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["dataset"] == "JPEG-rebuilt CIFAR-10" and sidecar["train_eps"] == 0.5
    assert sidecar["metrics"]["test/adv_acc@0.5"] == metrics["test/adv_acc@0.5"] and sidecar["test_images"] == 50
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = module.classifier.eval()(x)
        assert torch.allclose(load_classifier(path)(x), expected, atol=1e-6)
        assert torch.allclose(load_classifier(tmp_path / "classifier_madry.pt")(x), expected, atol=1e-6)
        stats = SimpleNamespace(mean=torch.zeros(3), std=torch.ones(3))
        madry = AttackerModel(robustness.cifar_models.ResNet18(wm=0.125), stats)
        state = torch.load(tmp_path / "classifier_madry.pt", weights_only=True)["model"]
        madry.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
        assert torch.allclose(madry.eval()(x, with_image=False), expected, atol=1e-5)


@pytest.mark.parametrize("bad", [{"schedule": "cosine"}, {"clean_weight": 1.5}])
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_module(**bad)


def test_eps_zero_is_standard_training_on_clean_images(cifar_root, tmp_path):
    def params_after_three_steps(**overrides) -> dict[str, torch.Tensor]:
        module = make_module(**overrides)
        data = CIFAR10DataModule(str(cifar_root), batch_size=16, train_size=48, test_size=16)
        make_trainer(tmp_path, max_steps=3, enable_checkpointing=False).fit(module, datamodule=data)
        return dict(module.classifier.named_parameters())

    standard = params_after_three_steps(attack=AttackSpec(eps=0.0, steps=2))
    # Adversarial examples weighted 0 and the clean loss weighted 1: the same gradients.
    clean_only = params_after_three_steps(clean_weight=1.0)
    robust = params_after_three_steps()
    for name, value in standard.items():
        torch.testing.assert_close(value, clean_only[name], rtol=0, atol=1e-6)
    assert any(not torch.allclose(value, robust[name]) for name, value in standard.items())
