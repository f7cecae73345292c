"""A DCGAN-style class-conditional generator for 32x32 images: bigroc's own design.

The BIGRoC paper trained its plain cGAN itself and published neither code nor weights for
it (its CIFAR notebooks cover the torch-mimicry GANs and cGAN-PD), and no published
PyTorch cGAN checkpoint for CIFAR-10 serves as a common reference. So this family is a
documented architecture of our own, in the spirit of Mirza & Osindero's cGAN on a DCGAN
body (Radford et al.):

    [z, embed(y)] (nz + embed_dim) -> ConvT 4x4 -> (4ngf, 4, 4) -> BN-ReLU
    -> ConvT 4x4 s2 -> (2ngf, 8, 8) -> BN-ReLU -> ConvT 4x4 s2 -> (ngf, 16, 16) -> BN-ReLU
    -> ConvT 4x4 s2 -> (3, 32, 32) -> tanh

Weights are a state dict of :class:`CGAN32` (a ``.safetensors`` file, optionally with a
JSON sidecar, or a ``torch.save``d state dict, maybe under ``state_dict``).
"""

from __future__ import annotations

import torch
from torch import nn

from bigroc.generators.base import Generator
from bigroc.generators.weights import check_setting, check_weights_choice, load_into, read_weights

CGAN_FORMAT = "a bigroc CGAN32 state dict (.safetensors or a torch state dict)"


def _up(c_in: int, c_out: int, first: bool = False) -> list[nn.Module]:
    conv = nn.ConvTranspose2d(c_in, c_out, 4, 1, 0, bias=False) if first else nn.ConvTranspose2d(
        c_in, c_out, 4, 2, 1, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]


class CGAN32(Generator):
    """Class-conditional DCGAN generator; output in [-1, 1].

    Args:
        nz: latent size.
        ngf: feature maps of the last hidden layer (4, 2, 1 times ngf from 4x4 to 16x16).
        num_classes: classes, one embedding row each.
        embed_dim: size of the label embedding concatenated with z.
    """

    def __init__(self, nz: int = 100, ngf: int = 64, num_classes: int = 10, embed_dim: int = 50) -> None:
        super().__init__()
        self.latent_dim, self.ngf, self.embed_dim = int(nz), int(ngf), int(embed_dim)
        self.num_classes, self.conditional = int(num_classes), True
        self.embed = nn.Embedding(self.num_classes, self.embed_dim)
        self.net = nn.Sequential(
            *_up(self.latent_dim + self.embed_dim, 4 * self.ngf, first=True),
            *_up(4 * self.ngf, 2 * self.ngf),
            *_up(2 * self.ngf, self.ngf),
            nn.ConvTranspose2d(self.ngf, 3, 4, 2, 1),
            nn.Tanh(),
        )
        for m in self.modules():  # DCGAN's initialisation
            if isinstance(m, (nn.ConvTranspose2d, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("CGAN32 is class-conditional: forward(z, y) needs labels y")
        h = torch.cat([z, self.embed(y)], dim=1)
        return self.net(h[:, :, None, None])


def build_cgan(name: str, checkpoint: str | None = None, random_init: bool = False, *, nz: int = 100,
               ngf: int = 64, num_classes: int = 10, embed_dim: int = 50) -> CGAN32:
    """Our conditional DCGAN, from a saved state dict or untrained."""
    check_weights_choice(name, checkpoint, random_init, CGAN_FORMAT)
    state = None
    if checkpoint is not None:
        state, _ = read_weights(checkpoint, name, CGAN_FORMAT)
        if "embed.weight" in state and "net.0.weight" in state:
            classes, emb = state["embed.weight"].shape
            found = {"num_classes": int(classes), "embed_dim": int(emb),
                     "nz": int(state["net.0.weight"].shape[0]) - int(emb),
                     "ngf": int(state["net.0.weight"].shape[1]) // 4}
            configured = {"num_classes": num_classes, "embed_dim": embed_dim, "nz": nz, "ngf": ngf}
            for key, value in found.items():
                check_setting(name, key, configured[key], value, checkpoint)
    model = CGAN32(nz=nz, ngf=ngf, num_classes=num_classes, embed_dim=embed_dim)
    if state is not None:
        load_into(model, state, checkpoint, f"bigroc's CGAN32 (nz={nz}, ngf={ngf})")
    return model.eval()
