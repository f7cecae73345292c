"""BigGAN-PyTorch's CIFAR generator: properties, its G.pth layout, loading and mismatches."""

from __future__ import annotations

import pytest
import torch

from bigroc.generators import build_generator
from bigroc.generators.biggan import BigGAN32
from generator_checks import check_properties, warm_norms, z_and_y


def biggan_keys(num_blocks: int = 3) -> set[str]:
    """BigGAN-PyTorch's Generator(resolution=32, G_attn='0', G_shared=False) keys, from its source."""
    sn = ("weight", "bias", "u0", "sv0")
    keys = {f"linear.{p}" for p in sn} | {f"output_layer.2.{p}" for p in sn}
    keys |= {f"output_layer.0.{p}" for p in ("gain", "bias", "stored_mean", "stored_var")}
    for i in range(num_blocks):
        block = f"blocks.{i}.0"
        keys |= {f"{block}.{conv}.{p}" for conv in ("conv1", "conv2", "conv_sc") for p in sn}
        keys |= {f"{block}.{bn}.{p}" for bn in ("bn1", "bn2")
                 for p in ("gain.weight", "bias.weight", "stored_mean", "stored_var")}
    return keys


@pytest.mark.parametrize("name", ["biggan", "diffaug_biggan"])
def test_properties(name):
    check_properties(build_generator(name, random_init=True, ch=2), conditional=True)


def test_properties_shared_hierarchical():
    gen = build_generator("biggan", random_init=True, ch=2, shared=True, hier=True)
    assert gen.latent_dim == 128 and gen.z_chunk == 32
    check_properties(gen, conditional=True)


def test_cifar_layout_at_full_width():
    model = BigGAN32(ch=64)
    state = model.state_dict()
    assert set(state) == biggan_keys()
    assert state["linear.weight"].shape == (4 * 4 * 256, 128) and state["linear.u0"].shape == (1, 4096)
    assert state["blocks.0.0.conv1.weight"].shape == (256, 256, 3, 3)
    assert state["blocks.2.0.conv_sc.weight"].shape == (256, 256, 1, 1)
    assert state["blocks.1.0.bn2.gain.weight"].shape == (10, 256)  # per-class gains (no G_shared)
    assert state["output_layer.2.weight"].shape == (3, 256, 3, 3) and state["output_layer.2.sv0"].shape == (1,)
    # linear 528,384 + 3 x (convs 1,245,952 + class gains/biases 10,240) + bn 512 + output conv 6,915
    assert sum(p.numel() for p in model.parameters()) == 4_304_387


def test_shared_layout():
    state = BigGAN32(ch=2, shared=True, hier=True).state_dict()
    assert state["shared.weight"].shape == (10, 128)
    assert state["linear.weight"].shape == (4 * 4 * 8, 32)
    assert state["blocks.0.0.bn1.gain.weight"].shape == (8, 128 + 32)
    assert {"blocks.0.0.bn1.gain.u0", "blocks.0.0.bn1.gain.sv0"} <= set(state)
    assert "blocks.0.0.bn1.gain.bias" not in state


@pytest.mark.parametrize("name, shared", [("biggan", False), ("diffaug_biggan", False), ("biggan", True)])
def test_loads_plain_state_dict(name, shared, tmp_path):
    torch.manual_seed(0)
    source = warm_norms(BigGAN32(ch=2, shared=shared)).eval()
    path = tmp_path / "G_ema.pth"
    torch.save(source.state_dict(), path)
    loaded = build_generator(name, checkpoint=str(path), ch=2, shared=shared)
    z, y = z_and_y()
    with torch.no_grad():
        assert torch.equal(loaded(z, y), source(z, y))
    assert torch.equal(loaded.generate(torch.arange(5), 1)[0], source.generate(torch.arange(5), 1)[0])


def test_spectral_norm_is_not_updated_when_sampling(tmp_path):
    gen = build_generator("biggan", random_init=True, ch=2)
    u = gen.linear.u0.clone()
    gen.generate(torch.arange(3), 0)
    assert torch.equal(gen.linear.u0, u)


@pytest.mark.parametrize("key, value, setting", [("ch", 3, "ch=2"), ("shared", True, "shared=False"),
                                                 ("num_classes", 100, "num_classes=10")])
def test_setting_mismatch_names_the_key(key, value, setting, tmp_path):
    path = tmp_path / "G.pth"
    torch.save(BigGAN32(ch=2).state_dict(), path)
    with pytest.raises(ValueError, match=rf"trained with {setting}, but generator.{key}={value}: "
                                         rf"set generator.{setting}"):
        build_generator("biggan", checkpoint=str(path), **{"ch": 2, key: value})


def test_attention_checkpoint_is_refused(tmp_path):
    state = BigGAN32(ch=2).state_dict()
    state["blocks.2.1.theta.weight"] = torch.zeros(1, 8, 1, 1)
    torch.save(state, tmp_path / "G.pth")
    with pytest.raises(ValueError, match="self-attention"):
        build_generator("biggan", checkpoint=str(tmp_path / "G.pth"), ch=2)


def test_mimicry_checkpoint_is_not_a_biggan(tmp_path):
    from bigroc.generators.mimicry import MimicryGenerator32

    torch.save({"model_state_dict": MimicryGenerator32(ngf=8).state_dict()}, tmp_path / "netG.pth")
    with pytest.raises(ValueError, match=r"does not fit BigGAN-PyTorch's .*missing: .*unexpected: "):
        build_generator("biggan", checkpoint=str(tmp_path / "netG.pth"), ch=2)


def test_no_weights():
    with pytest.raises(ValueError, match="generator 'diffaug_biggan' has no weights.*G.pth or G_ema.pth"):
        build_generator("diffaug_biggan")


def test_shared_dim_zero_means_dim_z(tmp_path):
    torch.save(BigGAN32(ch=2, shared=True).state_dict(), tmp_path / "G.pth")
    for shared_dim in (0, 128):  # both mean a 128-wide shared embedding
        build_generator("biggan", checkpoint=str(tmp_path / "G.pth"), ch=2, shared=True, shared_dim=shared_dim)
    torch.save(BigGAN32(ch=2, shared=True, shared_dim=32).state_dict(), tmp_path / "G32.pth")
    with pytest.raises(ValueError, match="shared_dim=32, but generator.shared_dim=128"):
        build_generator("biggan", checkpoint=str(tmp_path / "G32.pth"), ch=2, shared=True)
