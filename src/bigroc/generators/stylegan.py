"""NVlabs StyleGAN2-ADA (PyTorch) network pickles: a full-pickle opt-in.

NVlabs' ``.pkl`` snapshots pickle whole modules, whose classes (``dnnlib``,
``torch_utils``, ``training.networks``) are referenced by name, so they load only through
the user's own checkout of stylegan2-ada-pytorch (``generator.repo_path``) with its
``legacy.load_network_pkl``. Unpickling runs code from the file: choose this family only
for snapshots you trust. Nothing else in bigroc reads pickles this way.

The wrapper uses ``G_ema``: ``G(z, c, truncation_psi=..., noise_mode='const',
force_fp32=True)`` with ``z`` of ``G.z_dim`` and, for a conditional network
(``G.c_dim > 0``), one-hot labels ``c`` of ``index % c_dim``. Output range [-1, 1].
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bigroc.generators.base import Generator
from bigroc.generators.weights import check_weights_choice
from bigroc.safe_load import regular_file

STYLEGAN_FORMAT = "an NVlabs stylegan2-ada-pytorch network-snapshot-*.pkl, read with generator.repo_path"


def _legacy_module(repo_path: str | None):
    """The checkout's ``legacy`` module, with the checkout on ``sys.path`` for unpickling."""
    repo = Path(repo_path).expanduser().resolve() if repo_path else None
    if repo is None or not (repo / "legacy.py").is_file():
        where = f"{repo} has no legacy.py" if repo is not None else "it is not set"
        raise ValueError(
            f"generator 'stylegan2_ada' needs generator.repo_path=DIR, a checkout of NVlabs "
            f"stylegan2-ada-pytorch (with legacy.py, dnnlib, torch_utils); {where}"
        )
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    spec = importlib.util.spec_from_file_location("legacy", repo / "legacy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["legacy"] = module  # pickles may refer to it by name
    spec.loader.exec_module(module)
    return module


class StyleGAN2ADA(Generator):
    """A StyleGAN2-ADA ``G_ema`` behind the generator interface.

    Args:
        G: NVlabs' ``Generator`` (``z_dim``, ``c_dim``, ``img_resolution``,
            ``img_channels``, ``forward(z, c, truncation_psi, noise_mode)``).
        truncation_psi: 1.0 is no truncation.
        num_classes: dataset classes; must equal ``G.c_dim`` for a conditional network.
        force_fp32: pass ``force_fp32=True`` to ``G``: its fp16 layers (NVlabs' configs use
            them for the 4 highest resolutions) run in fp32, so image ``i`` does not depend
            on its batch (in fp16 it varies by ~1e-3 with the batch size). False keeps
            the network's own precision (faster on GPUs).
    """

    def __init__(self, G: nn.Module, truncation_psi: float = 1.0, num_classes: int = 10,
                 force_fp32: bool = True) -> None:
        super().__init__()
        if int(G.img_channels) != 3:
            raise ValueError(f"StyleGAN2-ADA network has {G.img_channels} image channels; bigroc needs RGB (3)")
        self.G = G
        self.latent_dim, self.c_dim = int(G.z_dim), int(G.c_dim)
        self.image_size = int(G.img_resolution)
        self.conditional = self.c_dim > 0
        if self.conditional and self.c_dim != int(num_classes):
            raise ValueError(f"the network is conditional on {self.c_dim} classes, but generator.num_classes="
                             f"{num_classes}: set generator.num_classes={self.c_dim}")
        self.num_classes = self.c_dim if self.conditional else int(num_classes)
        self.truncation_psi = float(truncation_psi)
        self.force_fp32 = bool(force_fp32)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if y is None:
                raise ValueError("this StyleGAN2-ADA network is conditional: forward(z, y) needs labels y")
            c = F.one_hot(y.long(), self.c_dim).to(z.dtype)
        else:
            c = z.new_zeros(z.shape[0], 0)
        extra = {"force_fp32": True} if self.force_fp32 else {}
        return self.G(z, c, truncation_psi=self.truncation_psi, noise_mode="const", **extra)


def build_stylegan2_ada(name: str, checkpoint: str | None = None, random_init: bool = False, *,
                        repo_path: str | None = None, truncation_psi: float = 1.0,
                        num_classes: int = 10, force_fp32: bool = True) -> StyleGAN2ADA:
    """``G_ema`` of an NVlabs network pickle, unpickled through the user's checkout."""
    if random_init:
        raise ValueError("generator 'stylegan2_ada' has no random_init: it only wraps a trained network "
                         "pickle (generator.checkpoint)")
    check_weights_choice(name, checkpoint, random_init, STYLEGAN_FORMAT)
    legacy = _legacy_module(repo_path)
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"generator '{name}': checkpoint {path} does not exist (generator.checkpoint)")
    regular_file(path, "StyleGAN2-ADA network pickle (generator.checkpoint)")  # a FIFO would block the open
    with open(path, "rb") as f:
        data = legacy.load_network_pkl(f)
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), nn.Module):
        raise ValueError(f"{path} holds no 'G_ema' network: expected {STYLEGAN_FORMAT}")
    G = data["G_ema"].eval().requires_grad_(False)
    return StyleGAN2ADA(G, truncation_psi=truncation_psi, num_classes=num_classes, force_fp32=force_fp32).eval()
