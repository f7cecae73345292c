"""Per-index latents, the [0, 1] mapping and the registry's errors."""

from __future__ import annotations

import sys

import pytest
import torch

from bigroc.generators import GENERATORS, Generator, ImageSource, build_generator
from bigroc.generators.base import seeded_normal


def test_latents_depend_on_seed_and_index_only():
    z = seeded_normal(torch.tensor([0, 1, 2, 7]), seed=3, dim=5)
    assert z.shape == (4, 5) and z.dtype == torch.float32
    assert torch.equal(seeded_normal(torch.tensor([7, 1]), seed=3, dim=5), z[[3, 1]])
    assert torch.equal(seeded_normal(torch.tensor([2]), seed=3, dim=5)[0], z[2])
    assert not torch.equal(seeded_normal(torch.tensor([0]), seed=4, dim=5)[0], z[0])
    # index and seed are not interchangeable, and the seed's high bits count
    assert not torch.equal(seeded_normal(torch.tensor([1]), 0, 5), seeded_normal(torch.tensor([0]), 1, 5))
    big = seeded_normal(torch.tensor([5]), seed=2**32 - 1, dim=5)
    assert not torch.equal(big, seeded_normal(torch.tensor([5]), seed=2**31 - 1, dim=5))


def test_latents_are_standard_normal():
    z = seeded_normal(torch.arange(400), seed=0, dim=128)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    assert abs(float((z**4).mean()) - 3) < 0.1  # Gaussian kurtosis
    odd = seeded_normal(torch.arange(3), seed=0, dim=7)
    assert odd.shape == (3, 7) and torch.isfinite(odd).all()


@pytest.mark.parametrize("seed, index", [(-1, 0), (2**32, 0), (0, -1), (0, 2**32)])
def test_latents_reject_out_of_range(seed, index):
    with pytest.raises(ValueError, match=r"2\*\*32"):
        seeded_normal(torch.tensor([index]), seed=seed, dim=4)


class Affine(Generator):
    """forward(z) = 3 * z[:, 0] broadcast over an image: native range (-3, 3)."""

    latent_dim, output_range, image_size = 4, (-3.0, 3.0), 2

    def forward(self, z, y=None):
        return (3 * z[:, :1, None, None]).expand(-1, 3, 2, 2)


def test_generate_maps_native_range_and_clamps():
    gen = Affine()
    assert len(gen) == sys.maxsize and bool(gen)
    x, y = gen.generate(torch.arange(50), seed=0)
    z = gen.latents(torch.arange(50), 0)[:, 0]
    expected = ((3 * z + 3) / 6).clamp(0, 1)
    torch.testing.assert_close(x[:, 0, 0, 0], expected)
    assert y is None and gen.labels(torch.arange(3)) is None
    gen.conditional = True
    assert torch.equal(gen.labels(torch.arange(23)), torch.arange(23) % 10)
    assert torch.equal(gen.sample(5, seed=2)[0], gen.generate(torch.arange(5), 2)[0])


def test_generate_restores_training_mode():
    gen = Affine().train()
    gen.generate(torch.arange(2), 0)
    assert gen.training


def test_generate_rejects_float_indices():
    with pytest.raises(ValueError, match="integer"):
        Affine().generate(torch.tensor([0.5]), 0)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown generator 'stylegan9'; known: .*biggan.*sngan"):
        build_generator("stylegan9")


def test_unknown_key_lists_the_familys_keys():
    with pytest.raises(ValueError, match=r"generator 'sngan' has no key\(s\) ch; its keys: .*ngf"):
        build_generator("sngan", random_init=True, ch=64)


def test_checkpoint_and_random_init_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="exclude each other"):
        build_generator("sngan", checkpoint=str(tmp_path / "x.pth"), random_init=True)


def test_registry_holds_every_family():
    expected = {"dcgan", "wgan_gp", "sngan", "ssgan", "infomax_gan", "cgan_pd", "cgan", "biggan",
                "diffaug_biggan", "stylegan2_ada", "vae", "samples", "diffusers"}
    assert set(GENERATORS) == expected
    assert issubclass(Generator, ImageSource)


def test_conditioning_is_not_a_config_key():
    with pytest.raises(ValueError, match="has no key"):
        build_generator("sngan", random_init=True, conditional=True)
