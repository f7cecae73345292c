"""The registry of image sources and ``build_generator``, every generator config's target."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from bigroc.generators.base import ImageSource
from bigroc.generators.biggan import build_biggan
from bigroc.generators.cgan import build_cgan
from bigroc.generators.diffusers_pipeline import build_diffusers
from bigroc.generators.mimicry import build_mimicry
from bigroc.generators.samples import build_samples
from bigroc.generators.stylegan import build_stylegan2_ada
from bigroc.generators.vae import build_vae


@dataclass(frozen=True)
class Family:
    """One registered source: ``build(checkpoint=..., random_init=..., **keys)`` and a summary."""

    build: Callable[..., ImageSource]
    summary: str


GENERATORS: dict[str, Family] = {
    "dcgan": Family(partial(build_mimicry, name="dcgan", output_activation="sigmoid"),
                    "torch-mimicry DCGAN (DCGANGeneratorCIFAR: ResNet generator, sigmoid output)"),
    "wgan_gp": Family(partial(build_mimicry, name="wgan_gp"), "torch-mimicry WGAN-GP 32x32"),
    "sngan": Family(partial(build_mimicry, name="sngan"), "torch-mimicry SNGAN 32x32"),
    "ssgan": Family(partial(build_mimicry, name="ssgan"), "torch-mimicry SSGAN 32x32"),
    "infomax_gan": Family(partial(build_mimicry, name="infomax_gan"), "torch-mimicry InfoMax-GAN 32x32"),
    "cgan_pd": Family(partial(build_mimicry, name="cgan_pd", conditional=True),
                      "torch-mimicry cGAN-PD 32x32 (class-conditional batch norm)"),
    "biggan": Family(partial(build_biggan, name="biggan"), "BigGAN-PyTorch, CIFAR-10 recipe (G_ch=64)"),
    "diffaug_biggan": Family(partial(build_biggan, name="diffaug_biggan"),
                             "DiffAugment-BigGAN (data-efficient-gans), CIFAR-10 (G_ch=64)"),
    "cgan": Family(partial(build_cgan, name="cgan"), "bigroc's class-conditional DCGAN (own design)"),
    "stylegan2_ada": Family(partial(build_stylegan2_ada, name="stylegan2_ada"),
                            "NVlabs StyleGAN2-ADA network pickle (full-pickle opt-in, needs repo_path)"),
    "vae": Family(partial(build_vae, name="vae"), "bigroc's convolutional VAE, sampled through its decoder"),
    "samples": Family(partial(build_samples, name="samples"), "stored images: an ADM-style .npz or a folder"),
    "diffusers": Family(partial(build_diffusers, name="diffusers"),
                        "Hugging Face diffusers pipeline (local folder or HF cache; DDPM/DDIM/DiT)"),
}

_COMMON = ("name", "checkpoint", "random_init", "conditional")  # conditional: fixed per family


def family_keys(name: str) -> list[str]:
    """The family-specific config keys that ``build_generator(name, ...)`` accepts."""
    params = inspect.signature(GENERATORS[name].build).parameters
    return [k for k, p in params.items() if k not in _COMMON and p.kind != p.VAR_KEYWORD]


def build_generator(name: str, checkpoint: str | os.PathLike | None = None, random_init: bool = False,
                    **family_kwargs: Any) -> ImageSource:
    """Build the image source ``name`` (see ``GENERATORS``), in eval mode on the CPU.

    Args:
        name: a key of ``GENERATORS``.
        checkpoint: the family's published weights (see its config file for the format).
        random_init: untrained weights instead, for tests only.
        family_kwargs: the family's own keys (``ngf``, ``ch``, ``path``, ...).

    Latent families refuse to build without weights unless ``random_init`` is set.
    """
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {', '.join(sorted(GENERATORS))}")
    allowed = family_keys(name)
    unknown = sorted(set(family_kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"generator '{name}' has no key(s) {', '.join(unknown)}; its keys: "
            f"{', '.join(['checkpoint', 'random_init', *allowed])}"
        )
    checkpoint = None if checkpoint in (None, "") else str(checkpoint)
    return GENERATORS[name].build(checkpoint=checkpoint, random_init=bool(random_init), **family_kwargs)
