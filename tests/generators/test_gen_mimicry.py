"""torch-mimicry generators: properties, mimicry's parameter layout, netG_*.pth loading, errors."""

from __future__ import annotations

import pytest
import torch

from bigroc.generators import build_generator
from bigroc.generators.mimicry import MimicryGenerator32
from generator_checks import check_properties, warm_norms, z_and_y


UNCONDITIONAL = ["dcgan", "wgan_gp", "sngan", "ssgan", "infomax_gan"]
ALL = UNCONDITIONAL + ["cgan_pd"]


def mimicry_keys(conditional: bool) -> set[str]:
    """The state-dict keys of mimicry's Generator32 / CGANPDGenerator32, from its source."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    cbn = ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "embed.weight"]
    keys = {"l1.weight", "l1.bias", "c5.weight", "c5.bias", *(f"b5.{k}" for k in bn)}
    for block in ("block2", "block3", "block4"):
        keys |= {f"{block}.{conv}.{p}" for conv in ("c1", "c2", "c_sc") for p in ("weight", "bias")}
        keys |= {f"{block}.{norm}.{k}" for norm in ("b1", "b2") for k in (cbn if conditional else bn)}
    return keys


def netg_file(tmp_path, model: torch.nn.Module, name: str = "netG_100000_steps.pth"):
    """A checkpoint laid out as mimicry's BaseModel.save_checkpoint writes it."""
    opt = torch.optim.Adam(model.parameters(), 2e-4, betas=(0.0, 0.9))
    model(torch.randn(2, model.latent_dim), torch.tensor([0, 1])).mean().backward()
    opt.step()  # a real optimizer state (exp_avg, step), as in a training snapshot
    path = tmp_path / name
    torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "global_step": 100000}, path)
    return path


@pytest.mark.parametrize("name", ALL)
def test_properties(name):
    check_properties(build_generator(name, random_init=True, ngf=8), conditional=name == "cgan_pd")


@pytest.mark.parametrize("conditional", [False, True])
def test_layout_matches_mimicry_at_full_width(conditional):
    model = MimicryGenerator32(nz=128, ngf=256, conditional=conditional)
    state = model.state_dict()
    assert set(state) == mimicry_keys(conditional)
    assert state["l1.weight"].shape == (4 * 4 * 256, 128)
    assert state["block2.c1.weight"].shape == (256, 256, 3, 3)
    assert state["block4.c_sc.weight"].shape == (256, 256, 1, 1)
    assert state["c5.weight"].shape == (3, 256, 3, 3) and state["b5.weight"].shape == (256,)
    if conditional:
        assert state["block3.b2.embed.weight"].shape == (10, 2 * 256)
    # l1 528,384 + 3 blocks x (2 convs 590,080 + shortcut 65,792 + norms) + b5 512 + c5 6,915
    expected = 4_304_387 if conditional else 4_276_739
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", ["sngan", "cgan_pd"])
def test_loads_netg_checkpoint(name, tmp_path):
    torch.manual_seed(0)
    source = warm_norms(MimicryGenerator32(ngf=8, conditional=name == "cgan_pd"))
    path = netg_file(tmp_path, source)
    loaded = build_generator(name, checkpoint=str(path), ngf=8)
    source.eval()
    z, y = z_and_y()
    with torch.no_grad():
        assert torch.equal(loaded(z, y), source(z, y))
    x, y_gen = loaded.generate(torch.arange(12), seed=3)
    x_src, y_src = source.generate(torch.arange(12), seed=3)
    assert torch.equal(x, x_src) and (y_gen is None or torch.equal(y_gen, y_src))


def test_dcgan_is_mimicrys_sigmoid_cifar_generator():
    dcgan = build_generator("dcgan", random_init=True, ngf=8)
    assert dcgan.output_range == (0.0, 1.0) and dcgan.output_activation == "sigmoid"
    tanh_dcgan = build_generator("dcgan", random_init=True, ngf=8, output_activation="tanh")
    assert tanh_dcgan.output_range == (-1.0, 1.0)
    assert build_generator("wgan_gp", random_init=True, ngf=8).output_range == (-1.0, 1.0)


def test_no_weights_names_the_config_keys():
    with pytest.raises(ValueError, match=r"generator 'sngan' has no weights: set generator.checkpoint=PATH "
                                         r"\(a torch-mimicry netG_\*.pth.*generator.random_init=true"):
        build_generator("sngan")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_generator("sngan", checkpoint=str(tmp_path / "nowhere.pth"))


def test_width_mismatch_names_the_key(tmp_path):
    path = netg_file(tmp_path, MimicryGenerator32(ngf=8))
    with pytest.raises(ValueError, match=r"ngf=8, but generator.ngf=16: set generator.ngf=8"):
        build_generator("sngan", checkpoint=str(path), ngf=16)


def test_conditional_checkpoint_into_unconditional_family(tmp_path):
    path = netg_file(tmp_path, MimicryGenerator32(ngf=8, conditional=True))
    with pytest.raises(ValueError, match="use generator=cgan_pd"):
        build_generator("sngan", checkpoint=str(path), ngf=8)


def test_wrong_keys_list_a_few(tmp_path):
    state = MimicryGenerator32(ngf=8).state_dict()
    state = {("renamed." + k if k.startswith("block3") else k): v for k, v in state.items()}
    path = tmp_path / "netG_bad.pth"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(ValueError) as err:
        build_generator("sngan", checkpoint=str(path), ngf=8)
    message = str(err.value)
    assert str(path) in message and "missing: block3." in message and "unexpected: renamed.block3" in message
    assert "more)" in message and message.count("\n") == 0 and len(message) < 600


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "netG.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        build_generator("sngan", checkpoint=str(path))
    torch.save({"global_step": 3}, path)
    with pytest.raises(ValueError, match="holds no generator state dict"):
        build_generator("sngan", checkpoint=str(path))
