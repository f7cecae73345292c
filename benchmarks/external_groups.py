"""The 27 published sample sets of ``shared/data/external-samples``, pooled by family.

Each group is one ADM-layout ``.npz`` (``arr_0`` uint8 N x 32 x 32 x 3, ``arr_1`` labels for
the class-conditional SteinGAN), the sets concatenated in the order listed here. The
JPEG-sourced sets form a group of their own, so they are never mixed with lossless ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Group:
    name: str
    title: str
    sets: tuple[str, ...]
    conditional: bool = False
    jpeg: bool = False


GROUPS = (
    Group("gan_classic", "GANs: DCGAN, minibatch discrimination, DFM, BEGAN, Progressive GAN",
          ("gc_dcgan", "cgl_dcgan", "cgl_minibatch_dis", "cgl_dfm", "cgl_began", "cgl_progressive")),
    Group("gan_wasserstein", "GANs: WGAN, WGAN-GP, Cramer GAN, DRAGAN (Wasserstein / gradient penalty)",
          ("gc_wgan_cnn", "gc_wgangp_cnn", "gc_wgangp_res", "cgl_wgan_gp", "cgl_cramer", "cgl_dragan")),
    Group("gan_spectral", "GANs: SNGAN, SN-DCGAN, InfoMax-GAN (spectral normalisation)",
          ("gc_sngan_cnn", "gc_sngan_res", "cgl_sndcgan", "mimicry_infomaxgan")),
    Group("diffusion", "Diffusion: DDPM, Reflected Diffusion", ("ddpm_w86763777", "reflected_diffusion")),
    Group("autoregressive", "Autoregressive: PixelCNN++ (two implementations)",
          ("pixelcnnpp_pclucas14", "ards_pixelcnnpp_smoothing")),
    Group("steingan_conditional", "SteinGAN, class-ordered (boosted towards its own labels)",
          ("steingan_cond_2016a", "steingan_cond_2016b", "steingan_cond_2017"), conditional=True),
    Group("gan_jpeg", "GANs from JPEG grids: DCGAN, WGAN, WGAN-GP x2 (improved_wgan_training)",
          ("iwgan_dcgan_JPEG", "iwgan_wgan_clipping_JPEG", "iwgan_wgan_gp_adam_JPEG", "iwgan_wgan_gp_rmsprop_JPEG"),
          jpeg=True),
)


def pooled(group: Group, samples_dir: Path, per_set: int | None = None) -> dict[str, np.ndarray]:
    """The group's images (and labels), the first ``per_set`` of each set (None: all)."""
    images, labels = [], []
    for name in group.sets:
        path = samples_dir / f"{name}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: pass --samples, the external-samples folder of shared/data")
        with np.load(path, allow_pickle=False) as z:
            images.append(z["arr_0"][:per_set])
            if group.conditional:
                labels.append(z["arr_1"][:per_set])
    out = {"arr_0": np.concatenate(images)}
    if group.conditional:
        out["arr_1"] = np.concatenate(labels).astype(np.int64)
    return out


def write_group(group: Group, samples_dir: Path, out_dir: Path, per_set: int | None = None) -> Path:
    """``out_dir/<group>.npz``; an identical file already there is left untouched (its size
    and modification time are part of every run's identity, so rewriting it would orphan them)."""
    arrays = pooled(group, samples_dir, per_set)
    path = out_dir / f"{group.name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if sorted(z.files) == sorted(arrays) and all(np.array_equal(z[k], v) for k, v in arrays.items()):
                return path
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path
