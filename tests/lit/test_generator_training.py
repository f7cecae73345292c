"""Generator training at tiny scale on real CIFAR-10: steps run, exports load through the
boost pipeline's generator configs, resuming is exact, EMA follows its formula."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from bigroc.data import CIFAR10DataModule
from bigroc.generators import build_generator
from bigroc.generators.mimicry import MimicryGenerator32
from bigroc.generators.vae import VAE
from bigroc.lit.gan_training import GANTraining
from bigroc.models.discriminators import SNResNetDiscriminator32
from bigroc.lit.ema import ema_decay_at, ema_update
from bigroc.lit.export import export_generator
from bigroc.lit.generative import GRID_DIR
from bigroc.lit.vae_training import VAETraining

CONF = Path(__file__).resolve().parents[2] / "conf"
IDX = torch.arange(6)


def make_data(root: Path, **overrides) -> CIFAR10DataModule:
    kwargs = dict(batch_size=16, train_size=64, test_size=32, augment=False) | overrides
    return CIFAR10DataModule(str(root), **kwargs)


def make_trainer(tmp_path: Path, **overrides) -> L.Trainer:
    kwargs = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                  default_root_dir=tmp_path) | overrides
    return L.Trainer(**kwargs)


def make_vae(**overrides) -> VAETraining:
    torch.manual_seed(0)
    return VAETraining(VAE(latent_dim=16, ch=8), **({"ema_decay": 0.9, "grid_size": 8} | overrides))


def boost_generator(sidecar: dict, path: Path):
    """The generator exactly as run_boost.py builds it from the overrides the sidecar gives."""
    overrides = [o if not o.startswith("generator.checkpoint=") else f"generator.checkpoint={path}"
                 for o in sidecar["boost_config"].split()]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="boost", overrides=overrides)
    return instantiate(cfg.generator)


def assert_same_images(a, b) -> None:
    (xa, ya), (xb, yb) = a.generate(IDX, seed=3), b.generate(IDX, seed=3)
    torch.testing.assert_close(xa, xb, atol=1e-6, rtol=0)
    assert (ya is None and yb is None) or torch.equal(ya, yb)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    expected = b.state_dict()
    for name, value in a.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_ema_update_follows_the_decay_formula():
    torch.manual_seed(0)
    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        ema.weight.fill_(1.0)
        model.running_mean.fill_(5.0)
    ema_update(ema, model, decay=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.75 * 1.0 + 0.25 * 2.0))
    assert torch.equal(ema.running_mean, model.running_mean)  # buffers are copied
    assert ema_decay_at(0, 0.999, warmup=True) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999, warmup=True) == 0.999 and ema_decay_at(0, 0.999, warmup=False) == 0.999


def test_vae_trains_exports_and_loads_through_the_boost_config(cifar_root, tmp_path):
    data = make_data(cifar_root)
    module = make_vae()
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer = make_trainer(tmp_path, max_steps=3, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 3 and module.ema_updates == 3
    after = module.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(module.net_ema.fc_mu.weight, module.net.fc_mu.weight)
    assert len(list((tmp_path / GRID_DIR).glob("epoch0000_step*.png"))) == 1

    path = export_generator(module, data, trainer, out_dir=tmp_path, train_seconds=2.0)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["generator"] == "vae" and sidecar["weights"] == "ema" and sidecar["batches"] == 3
    assert sidecar["dataset"] == "JPEG-rebuilt CIFAR-10" and sidecar["latent_dim"] == 16 and sidecar["ch"] == 8
    assert sidecar["command"].startswith("python") and sidecar["machine"]
    exported = build_generator("vae", checkpoint=path, latent_dim=16, ch=8)
    assert_same_images(exported, module.sampler())
    assert_same_images(boost_generator(sidecar, path), module.sampler())
    assert not torch.allclose(module.sampler(ema=False).generate(IDX, 3)[0], exported.generate(IDX, 3)[0])


def test_vae_validation_reports_the_loss(cifar_root, tmp_path):
    module = make_vae(ema_decay=0.0, grid_size=0)
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1,
                           enable_checkpointing=False)
    trainer.fit(module, datamodule=make_data(cifar_root))
    metrics = trainer.callback_metrics
    assert {"val/loss", "val/recon", "val/kl", "train/loss"} <= set(metrics)
    assert not list(tmp_path.glob(f"{GRID_DIR}/*.png"))  # grid_size=0: no grid


def test_resumed_vae_run_ends_with_the_uninterrupted_weights(cifar_root, tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    whole = make_vae(grid_size=0)  # 4 batches an epoch: step 3 falls mid-epoch
    make_trainer(tmp_path, max_steps=7, callbacks=[ckpt]).fit(whole, datamodule=make_data(cifar_root))
    resumed = make_vae(grid_size=0)
    trainer = make_trainer(tmp_path, max_steps=7, enable_checkpointing=False)
    trainer.fit(resumed, datamodule=make_data(cifar_root), ckpt_path=next((tmp_path / "ckpt").glob("*step=3.ckpt")))
    assert trainer.global_step == 7 and resumed.batches_done == 7 and resumed.ema_updates == 7
    assert_same_weights(resumed.net, whole.net)
    assert_same_weights(resumed.net_ema, whole.net_ema)


@pytest.mark.parametrize("bad", [{"recon": "l1"}, {"schedule": "step"}, {"ema_decay": 1.0}, {"beta": -1.0},
                                 {"grid_size": -1}])
def test_bad_vae_options_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_vae(**bad)


def make_gan(conditional: bool, **overrides) -> GANTraining:
    torch.manual_seed(0)
    generator = MimicryGenerator32(nz=16, ngf=8, conditional=conditional)
    critic = SNResNetDiscriminator32(ndf=8, num_classes=10 if conditional else 0)
    return GANTraining(generator, critic, **({"n_dis": 2, "ema_decay": 0.9, "grid_size": 10} | overrides))


@pytest.mark.parametrize("family", ["sngan", "cgan_pd"])
def test_gan_trains_exports_and_loads_through_the_boost_config(cifar_root, tmp_path, family):
    data = make_data(cifar_root)
    module = make_gan(conditional=family == "cgan_pd")
    g_before = module.net.l1.weight.clone()
    trainer = make_trainer(tmp_path, max_epochs=1, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    # 4 batches: 4 discriminator steps, and a generator step (and EMA update) after every 2nd.
    assert module.batches_done == 4 and module.ema_updates == 2 and trainer.global_step == 6
    assert not torch.equal(module.net.l1.weight, g_before)
    assert not torch.equal(module.net_ema.l1.weight, module.net.l1.weight)
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"} <= set(trainer.callback_metrics)
    assert len(list((tmp_path / GRID_DIR).glob("*.png"))) == 1

    path = export_generator(module, data, trainer, out_dir=tmp_path, train_seconds=2.0)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["generator"] == family and sidecar["weights"] == "ema"
    assert (sidecar["ngf"], sidecar["nz"], sidecar["recipe"]["ndf"]) == (8, 16, 8)
    exported = build_generator(family, checkpoint=path, nz=16, ngf=8)
    assert exported.conditional == (family == "cgan_pd")
    assert_same_images(exported, module.sampler())
    assert_same_images(boost_generator(sidecar, path), module.sampler())


def test_discriminator_layers_are_spectrally_normalised():
    critic = make_gan(conditional=True).discriminator
    critic.train()
    for _ in range(30):  # power iterations run in training-mode forwards
        critic(torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([1, 2]))
    critic.eval()
    with torch.no_grad():
        for layer in (critic.l5, critic.block2.c1, critic.l_y):
            assert float(torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2)) == pytest.approx(1.0, abs=0.05)


def test_resumed_gan_run_ends_with_the_uninterrupted_weights(cifar_root, tmp_path):
    # n_dis=3, 4 batches an epoch: batches end at optimizer steps 1, 2, 4 (G), 5, 6, 8 (G), ...
    # so the checkpoint at step 6 falls mid-epoch and between two generator steps.
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1)
    whole = make_gan(conditional=True, n_dis=3, grid_size=0, schedule="linear")
    make_trainer(tmp_path, max_epochs=2, callbacks=[ckpt]).fit(whole, datamodule=make_data(cifar_root))
    resumed = make_gan(conditional=True, n_dis=3, grid_size=0, schedule="linear")
    trainer = make_trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    trainer.fit(resumed, datamodule=make_data(cifar_root), ckpt_path=next((tmp_path / "ckpt").glob("*step=6.ckpt")))
    assert resumed.batches_done == whole.batches_done == 8 and resumed.ema_updates == whole.ema_updates == 2
    assert trainer.global_step == 10
    assert_same_weights(resumed.net, whole.net)
    assert_same_weights(resumed.net_ema, whole.net_ema)
    assert_same_weights(resumed.discriminator, whole.discriminator)


@pytest.mark.parametrize("bad, match", [({"n_dis": 0}, "n_dis"), ({"loss": "wasserstein"}, "loss"),
                                        ({"schedule": "cosine"}, "schedule"), ({"ema_decay": -0.1}, "ema_decay")])
def test_bad_gan_options_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        make_gan(conditional=False, **bad)


def test_generator_and_discriminator_must_agree_on_conditioning():
    with pytest.raises(ValueError, match="projection discriminator"):
        GANTraining(MimicryGenerator32(ngf=8, conditional=True), SNResNetDiscriminator32(ndf=8, num_classes=0))
    with pytest.raises(ValueError, match="disagree"):
        GANTraining(MimicryGenerator32(ngf=8), SNResNetDiscriminator32(ndf=8, num_classes=10))
