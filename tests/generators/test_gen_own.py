"""bigroc's own cGAN and VAE: properties, the VAE's pieces, save/load round trips, mismatches."""

from __future__ import annotations

import json

import pytest
import torch

from bigroc.generators import build_generator
from bigroc.generators.cgan import CGAN32
from bigroc.generators.vae import VAE, save_vae, vae_loss
from generator_checks import check_properties, warm_norms, z_and_y


def test_cgan_properties():
    gen = build_generator("cgan", random_init=True, ngf=4)
    assert gen.latent_dim == 100 and gen.output_range == (-1.0, 1.0)
    check_properties(gen, conditional=True)


def test_cgan_labels_change_the_image():
    gen = build_generator("cgan", random_init=True, ngf=4)
    z = gen.latents(torch.tensor([0, 0]), seed=0)
    with torch.no_grad():
        x = gen(z, torch.tensor([1, 2]))
    assert not torch.allclose(x[0], x[1])


def test_cgan_round_trip_torch_state_dict(tmp_path):
    torch.manual_seed(0)
    source = warm_norms(CGAN32(ngf=4)).eval()
    torch.save({"state_dict": source.state_dict()}, tmp_path / "cgan.pt")
    loaded = build_generator("cgan", checkpoint=str(tmp_path / "cgan.pt"), ngf=4)
    z = torch.randn(4, 100)
    with torch.no_grad():
        assert torch.equal(loaded(z, z_and_y()[1]), source(z, z_and_y()[1]))


def test_cgan_mismatch_names_the_key(tmp_path):
    torch.save(CGAN32(ngf=4, nz=64).state_dict(), tmp_path / "cgan.pt")
    with pytest.raises(ValueError, match="nz=64, but generator.nz=100: set generator.nz=64"):
        build_generator("cgan", checkpoint=str(tmp_path / "cgan.pt"), ngf=4)


def test_vae_properties():
    gen = build_generator("vae", random_init=True, ch=4, latent_dim=8)
    assert gen.latent_dim == 8 and gen.output_range == (0.0, 1.0) and gen.labels(torch.arange(3)) is None
    check_properties(gen, conditional=False)


def test_vae_pieces():
    vae = VAE(latent_dim=6, ch=4)
    x = torch.rand(3, 3, 32, 32)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (3, 6)
    z = VAE.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, VAE.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        x_hat, mu2, _ = vae(x)
    assert x_hat.shape == x.shape and 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1
    assert torch.equal(mu, mu2)


def test_vae_loss_is_the_negative_elbo():
    x = torch.rand(2, 3, 4, 4)
    zeros = torch.zeros(2, 5)
    loss, rec, kl = vae_loss(x, x, zeros, zeros, recon="mse")
    assert float(loss) == 0 and float(kl) == 0 and float(rec) == 0
    mu, logvar = torch.ones(2, 5), torch.zeros(2, 5)
    loss, rec, kl = vae_loss(torch.full_like(x, 0.5), x, mu, logvar, beta=2.0)
    torch.testing.assert_close(kl, torch.tensor(2.5))  # 0.5 * sum(mu^2) over 5 dims
    torch.testing.assert_close(loss, rec + 2 * kl)
    torch.testing.assert_close(rec, torch.tensor(48 * 0.6931472), rtol=1e-5, atol=1e-5)  # BCE at 0.5: ln 2
    with pytest.raises(ValueError, match="recon"):
        vae_loss(x, x, mu, logvar, recon="l1")


def test_vae_loss_trains():
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, ch=4)
    opt = torch.optim.Adam(vae.parameters(), 1e-2)
    x = torch.rand(8, 3, 32, 32)
    losses = []
    for _ in range(5):
        x_hat, mu, logvar = vae(x)
        loss, _, _ = vae_loss(x_hat, x, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_vae_safetensors_round_trip(tmp_path):
    torch.manual_seed(0)
    vae = warm_norms(VAE(latent_dim=8, ch=4)).eval()
    side = save_vae(vae, tmp_path / "vae.safetensors", epochs=3)
    meta = json.loads(side.read_text())
    assert meta == {"format": "bigroc-vae", "latent_dim": 8, "ch": 4, "epochs": 3}
    loaded = build_generator("vae", checkpoint=str(tmp_path / "vae.safetensors"), ch=4, latent_dim=8)
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(loaded(z), vae.decode(z))
    torch.save(loaded.state_dict(), tmp_path / "gen.pt")  # a VAEGenerator's own dict ("vae." keys)
    again = build_generator("vae", checkpoint=str(tmp_path / "gen.pt"), ch=4, latent_dim=8)
    assert torch.equal(again.generate(torch.arange(3), 0)[0], loaded.generate(torch.arange(3), 0)[0])


def test_vae_latent_mismatch(tmp_path):
    save_vae(VAE(latent_dim=8, ch=4), tmp_path / "vae.safetensors")
    with pytest.raises(ValueError, match="latent_dim=8, but generator.latent_dim=128"):
        build_generator("vae", checkpoint=str(tmp_path / "vae.safetensors"), ch=4)
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        save_vae(VAE(latent_dim=8, ch=4), tmp_path / "vae.pt")


def test_no_weights():
    with pytest.raises(ValueError, match="generator 'vae' has no weights: set generator.checkpoint=PATH"):
        build_generator("vae")
    with pytest.raises(ValueError, match="generator 'cgan' has no weights"):
        build_generator("cgan")


def test_vae_refuses_another_bigroc_export(tmp_path):
    save_vae(VAE(latent_dim=8, ch=4), tmp_path / "w.safetensors")
    (tmp_path / "w.json").write_text(json.dumps({"format": "bigroc-classifier"}))
    with pytest.raises(ValueError, match="is a bigroc-classifier file, not a bigroc VAE"):
        build_generator("vae", checkpoint=str(tmp_path / "w.safetensors"), ch=4, latent_dim=8)
