"""torch-mimicry's 32x32 ResNet generators (CIFAR-10), with mimicry's parameter names.

One architecture serves mimicry's DCGAN, WGAN-GP, SNGAN, SSGAN and InfoMax-GAN generators
at 32x32 and, with class-conditional batch norm, cGAN-PD:

    l1: Linear(nz, 4*4*ngf) -> (ngf, 4, 4)
    block2..block4: residual up-blocks (BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus an
        upsample-conv1x1 shortcut); upsampling is bilinear with align_corners=False
    b5: BatchNorm2d -> ReLU -> c5: Conv2d(ngf, 3, 3) -> tanh

No spectral norm in any mimicry generator (only its discriminators use it). The blocks'
names (``b1``, ``c1``, ``b2``, ``c2``, ``c_sc``) and cGAN-PD's conditional batch norm
(``bn``: affine-free BatchNorm2d, ``embed``: Embedding(num_classes, 2*C) holding gamma then
beta) follow mimicry, so ``netG_*.pth`` files load as they are.

The differences between families are outside the generator's weights: WGAN-GP's block
only changes the shortcut's initialisation, and mimicry's CIFAR-10 DCGAN checkpoint comes
from ``DCGANGeneratorCIFAR``, which ends in a sigmoid ([0, 1]) rather than tanh.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bigroc.generators.base import Generator
from bigroc.generators.weights import check_setting, check_weights_choice, load_into, read_weights

MIMICRY_FORMAT = "a torch-mimicry netG_*.pth: {model_state_dict, optimizer_state_dict, global_step}"


class ConditionalBatchNorm2d(nn.Module):
    """Affine-free batch norm, then per-class scale and shift from one embedding."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.channels = channels
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.embed = nn.Embedding(num_classes, 2 * channels)
        with torch.no_grad():  # mimicry's init: scale ~ N(1, 0.02), shift 0
            self.embed.weight[:, :channels].normal_(1.0, 0.02)
            self.embed.weight[:, channels:].zero_()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.embed(y).chunk(2, dim=1)
        return gamma[:, :, None, None] * self.bn(x) + beta[:, :, None, None]


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """mimicry's ``GBlock(ngf, ngf, upsample=True)``, optionally class-conditional."""

    def __init__(self, channels: int, num_classes: int = 0) -> None:
        super().__init__()
        self.conditional = num_classes > 0
        norm = (lambda: ConditionalBatchNorm2d(channels, num_classes)) if self.conditional else (
            lambda: nn.BatchNorm2d(channels))
        self.c1 = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.b1, self.b2 = norm(), norm()
        self.c_sc = nn.Conv2d(channels, channels, 1, 1, padding=0)
        nn.init.xavier_uniform_(self.c1.weight, 2**0.5)
        nn.init.xavier_uniform_(self.c2.weight, 2**0.5)
        nn.init.xavier_uniform_(self.c_sc.weight, 1.0)

    def _norm(self, bn: nn.Module, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return bn(h, y) if self.conditional else bn(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(_up(F.relu(self._norm(self.b1, x, y))))
        h = self.c2(F.relu(self._norm(self.b2, h, y)))
        return h + self.c_sc(_up(x))


class MimicryGenerator32(Generator):
    """mimicry's ``*Generator32`` (``CGANPDGenerator32`` when ``conditional``).

    Args:
        nz: latent size (mimicry: 128).
        ngf: feature maps throughout (mimicry: 256).
        bottom_width: side of the first feature map (4 -> 32x32 output).
        num_classes: classes of the dataset (labels and debiasing use it).
        conditional: cGAN-PD's class-conditional batch norm in the blocks.
        output_activation: ``"tanh"`` (output in [-1, 1]) or ``"sigmoid"`` ([0, 1], mimicry's
            ``DCGANGeneratorCIFAR``).
    """

    def __init__(self, nz: int = 128, ngf: int = 256, bottom_width: int = 4, num_classes: int = 10,
                 conditional: bool = False, output_activation: str = "tanh") -> None:
        super().__init__()
        if output_activation not in ("tanh", "sigmoid"):
            raise ValueError(f"output_activation must be 'tanh' or 'sigmoid', got {output_activation!r}")
        self.latent_dim, self.ngf, self.bottom_width = int(nz), int(ngf), int(bottom_width)
        self.num_classes, self.conditional = int(num_classes), bool(conditional)
        self.image_size = self.bottom_width * 8
        self.output_activation = output_activation
        self.output_range = (-1.0, 1.0) if output_activation == "tanh" else (0.0, 1.0)
        cond = self.num_classes if self.conditional else 0
        self.l1 = nn.Linear(self.latent_dim, self.bottom_width**2 * self.ngf)
        self.block2 = UpBlock(self.ngf, cond)
        self.block3 = UpBlock(self.ngf, cond)
        self.block4 = UpBlock(self.ngf, cond)
        self.b5 = nn.BatchNorm2d(self.ngf)
        self.c5 = nn.Conv2d(self.ngf, 3, 3, 1, padding=1)
        nn.init.xavier_uniform_(self.l1.weight, 1.0)
        nn.init.xavier_uniform_(self.c5.weight, 1.0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional and y is None:
            raise ValueError("this generator is class-conditional: forward(z, y) needs labels y")
        h = self.l1(z).view(z.shape[0], self.ngf, self.bottom_width, self.bottom_width)
        for block in (self.block2, self.block3, self.block4):
            h = block(h, y if self.conditional else None)
        h = self.c5(F.relu(self.b5(h)))
        return torch.tanh(h) if self.output_activation == "tanh" else torch.sigmoid(h)


def implied_settings(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """``nz``, ``ngf`` and conditioning read off a mimicry generator state dict."""
    found: dict[str, object] = {}
    if "c5.weight" in state:
        found["ngf"] = int(state["c5.weight"].shape[1])
    if "l1.weight" in state:
        found["nz"] = int(state["l1.weight"].shape[1])
    if "block2.b1.embed.weight" in state:
        found["num_classes"] = int(state["block2.b1.embed.weight"].shape[0])
    return found


def build_mimicry(name: str, checkpoint: str | None = None, random_init: bool = False, *, nz: int = 128,
                  ngf: int = 256, num_classes: int = 10, conditional: bool = False,
                  output_activation: str = "tanh") -> MimicryGenerator32:
    """A mimicry 32x32 generator, from a ``netG_*.pth`` or (``random_init``) untrained."""
    check_weights_choice(name, checkpoint, random_init, MIMICRY_FORMAT)
    state = None
    if checkpoint is not None:
        state, _ = read_weights(checkpoint, name, MIMICRY_FORMAT)
        found = implied_settings(state)
        if "num_classes" in found and not conditional:
            raise ValueError(f"{checkpoint} is a class-conditional (cGAN-PD) generator: use generator=cgan_pd")
        if conditional and "ngf" in found and "num_classes" not in found:
            raise ValueError(f"{checkpoint} is an unconditional mimicry generator, not cGAN-PD")
        for key, value in (("nz", nz), ("ngf", ngf), ("num_classes", num_classes)):
            if key in found:
                check_setting(name, key, value, found[key], checkpoint)
    model = MimicryGenerator32(nz=nz, ngf=ngf, num_classes=num_classes, conditional=conditional,
                               output_activation=output_activation)
    if state is not None:
        kind = "CGANPDGenerator32" if conditional else "Generator32"
        load_into(model, state, checkpoint, f"torch-mimicry's {kind} (nz={nz}, ngf={ngf})")
    return model.eval()
