"""StyleGAN2-ADA wrapper against a fake checkout that mimics NVlabs' published interface.

The fake checkout has a ``legacy.py`` whose ``load_network_pkl(f)`` unpickles
``{'G_ema': module}``, the module's class living in the checkout (so, like NVlabs'
pickles, the file only loads with the checkout on ``sys.path``), and a generator with
``z_dim``, ``c_dim``, ``img_resolution``, ``img_channels`` and
``forward(z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs)``.
"""

from __future__ import annotations

import pickle
import sys
import textwrap

import pytest
import torch

from bigroc.generators import build_generator
from generator_checks import check_properties


NETWORKS = textwrap.dedent('''
    import torch

    class FakeGenerator(torch.nn.Module):
        def __init__(self, z_dim, c_dim, img_resolution=32, img_channels=3):
            super().__init__()
            self.z_dim, self.c_dim = z_dim, c_dim
            self.img_resolution, self.img_channels = img_resolution, img_channels
            self.affine = torch.nn.Linear(z_dim + c_dim, img_channels * img_resolution ** 2)
            self.calls = []

        def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
            assert c.shape == (z.shape[0], self.c_dim), c.shape
            self.calls.append(dict(c=c.clone(), psi=truncation_psi, **synthesis_kwargs))
            h = torch.tanh(self.affine(torch.cat([z, c], dim=1))) * truncation_psi
            return h.view(-1, self.img_channels, self.img_resolution, self.img_resolution)
''')

LEGACY = textwrap.dedent('''
    import pickle

    def load_network_pkl(f, force_fp16=False):
        return {"G": None, "D": None, "G_ema": pickle.load(f)}
''')


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A fake stylegan2-ada-pytorch checkout and a pickle factory; sys state restored after."""
    repo = tmp_path / "stylegan2-ada-pytorch"
    repo.mkdir()
    (repo / "legacy.py").write_text(LEGACY)
    (repo / "fake_sg2_networks.py").write_text(NETWORKS)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def snapshot(c_dim: int, name: str = "network-snapshot-000100.pkl"):
        monkeypatch.syspath_prepend(str(repo))
        import fake_sg2_networks

        torch.manual_seed(0)
        G = fake_sg2_networks.FakeGenerator(z_dim=16, c_dim=c_dim)
        path = tmp_path / name
        path.write_bytes(pickle.dumps(G))
        sys.path.remove(str(repo))  # the wrapper must put the checkout back itself
        del sys.modules["fake_sg2_networks"]
        return path, G

    yield repo, snapshot
    for module in ("legacy", "fake_sg2_networks"):
        sys.modules.pop(module, None)


@pytest.mark.parametrize("c_dim", [0, 10])
def test_properties(c_dim, checkout):
    repo, snapshot = checkout
    path, _ = snapshot(c_dim)
    gen = build_generator("stylegan2_ada", checkpoint=str(path), repo_path=str(repo))
    assert gen.latent_dim == 16 and gen.image_size == 32 and gen.output_range == (-1.0, 1.0)
    check_properties(gen, conditional=c_dim > 0)


def test_calls_g_ema_as_published(checkout):
    repo, snapshot = checkout
    path, G = snapshot(10)
    gen = build_generator("stylegan2_ada", checkpoint=str(path), repo_path=str(repo), truncation_psi=0.7)
    idx = torch.tensor([3, 12, 25])
    x, y = gen.generate(idx, seed=4)
    call = gen.G.calls[-1]
    assert call["noise_mode"] == "const" and call["psi"] == 0.7 and call["force_fp32"] is True
    assert torch.equal(call["c"], torch.nn.functional.one_hot(idx % 10, 10).float())
    with torch.no_grad():
        expected = G(gen.latents(idx, 4), call["c"], truncation_psi=0.7, noise_mode="const")
    torch.testing.assert_close(x, ((expected + 1) / 2).clamp(0, 1))
    assert torch.equal(y, idx % 10)
    native = build_generator("stylegan2_ada", checkpoint=str(path), repo_path=str(repo), force_fp32=False)
    native.generate(idx, seed=0)
    assert "force_fp32" not in native.G.calls[-1]


@pytest.mark.parametrize("repo_path", [None, "missing"])
def test_repo_path_error_is_one_line(repo_path, checkout, tmp_path):
    _, snapshot = checkout
    path, _ = snapshot(0)
    where = None if repo_path is None else str(tmp_path / repo_path)
    with pytest.raises(ValueError, match="generator.repo_path") as err:
        build_generator("stylegan2_ada", checkpoint=str(path), repo_path=where)
    assert "\n" not in str(err.value)


def test_other_errors(checkout, tmp_path):
    repo, snapshot = checkout
    path, _ = snapshot(10)
    with pytest.raises(ValueError, match="set generator.num_classes=10"):
        build_generator("stylegan2_ada", checkpoint=str(path), repo_path=str(repo), num_classes=100)
    with pytest.raises(ValueError, match="has no weights"):
        build_generator("stylegan2_ada", repo_path=str(repo))
    with pytest.raises(ValueError, match="no random_init"):
        build_generator("stylegan2_ada", random_init=True, repo_path=str(repo))
    with pytest.raises(FileNotFoundError, match="nothing.pkl"):
        build_generator("stylegan2_ada", checkpoint=str(tmp_path / "nothing.pkl"), repo_path=str(repo))
