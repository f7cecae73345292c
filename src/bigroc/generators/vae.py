"""A convolutional VAE for 32x32 images (bigroc's own), and the generator that samples it.

Encoder: three stride-2 4x4 convs (ch, 2ch, 4ch; batch norm after the first one,
LeakyReLU 0.2) to (4ch, 4, 4), then linear maps to ``mu`` and ``logvar``. Decoder: a linear
map back to (4ch, 4, 4), three stride-2 transposed convs (2ch, ch, 3) with batch norm and
ReLU between them, and a sigmoid, so images come out in [0, 1].

Training code uses :class:`VAE` (``encode``, ``reparameterize``, ``decode``) and the pure
:func:`vae_loss`; :func:`save_vae` writes ``NAME.safetensors`` with a JSON sidecar
``NAME.json``, which ``generator=vae generator.checkpoint=NAME.safetensors`` reads (so does
a ``torch.save``d state dict).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bigroc.generators.base import Generator
from bigroc.generators.weights import check_setting, check_weights_choice, load_into, read_weights

VAE_FORMAT = "a bigroc VAE state dict (.safetensors from save_vae, or a torch state dict)"
SIDECAR_FORMAT = "bigroc-vae"


class VAE(nn.Module):
    """Gaussian-latent VAE; images in [0, 1], shape (B, 3, 32, 32).

    Args:
        latent_dim: size of z.
        ch: channels of the first encoder conv (the widest layers have 4 * ch).
    """

    def __init__(self, latent_dim: int = 128, ch: int = 64) -> None:
        super().__init__()
        self.latent_dim, self.ch = int(latent_dim), int(ch)
        c, flat = self.ch, 4 * self.ch * 4 * 4
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), act(),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.BatchNorm2d(2 * c), act(),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.BatchNorm2d(4 * c), act(),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(flat, self.latent_dim)
        self.fc_logvar = nn.Linear(flat, self.latent_dim)
        self.fc_decode = nn.Linear(self.latent_dim, flat)
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (4 * c, 4, 4)), nn.BatchNorm2d(4 * c), nn.ReLU(),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, 3, 4, 2, 1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 32, 32) in [0, 1] -> (mu, logvar), each (B, latent_dim)."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> images (B, 3, 32, 32) in [0, 1]."""
        return torch.sigmoid(self.decoder(self.fc_decode(z)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (reconstruction, mu, logvar)."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def vae_loss(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0, recon: str = "bce") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Negative ELBO per image: (loss, reconstruction term, KL term), batch means.

    Args:
        x_hat, x: reconstructions and targets in [0, 1], (B, 3, H, W).
        mu, logvar: the encoder's posterior, (B, latent_dim).
        beta: weight of the KL term (1: the plain ELBO).
        recon: ``"bce"`` (Bernoulli likelihood) or ``"mse"`` (Gaussian, unit variance up to
            a constant), summed over pixels.
    """
    if recon == "bce":
        rec = F.binary_cross_entropy(x_hat, x, reduction="none")
    elif recon == "mse":
        rec = 0.5 * (x_hat - x) ** 2
    else:
        raise ValueError(f"recon must be 'bce' or 'mse', got {recon!r}")
    rec = rec.flatten(1).sum(1).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    return rec + beta * kl, rec, kl


def save_vae(vae: VAE, path: str | os.PathLike, **meta: object) -> Path:
    """Write ``vae`` as ``path`` (.safetensors) plus ``path.json``; returns the sidecar's path."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"VAE weights path must end in .safetensors, got {path}")
    state = {k: v.detach().cpu().contiguous() for k, v in vae.state_dict().items()}
    save_file(state, str(path))
    side = path.with_suffix(".json")
    side.write_text(json.dumps({"format": SIDECAR_FORMAT, "latent_dim": vae.latent_dim, "ch": vae.ch, **meta},
                               indent=2, default=str))
    return side


class VAEGenerator(Generator):
    """Samples ``vae.decode(z)``, z ~ N(0, I); unconditional, output in [0, 1]."""

    output_range = (0.0, 1.0)

    def __init__(self, vae: VAE, num_classes: int = 10) -> None:
        super().__init__()
        self.vae = vae
        self.latent_dim, self.num_classes = vae.latent_dim, int(num_classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.vae.decode(z)


def build_vae(name: str, checkpoint: str | None = None, random_init: bool = False, *,
              latent_dim: int = 128, ch: int = 64, num_classes: int = 10) -> VAEGenerator:
    """The VAE's decoder as a generator, from a saved VAE state dict or untrained."""
    check_weights_choice(name, checkpoint, random_init, VAE_FORMAT)
    state = None
    if checkpoint is not None:
        state, meta = read_weights(checkpoint, name, VAE_FORMAT)
        if meta.get("format", SIDECAR_FORMAT) != SIDECAR_FORMAT:
            raise ValueError(f"{checkpoint} is a {meta['format']} file, not {VAE_FORMAT}")
        state = {k.removeprefix("vae."): v for k, v in state.items()}  # a VAEGenerator's own dict
        if "fc_mu.weight" in state and "encoder.0.weight" in state:
            check_setting(name, "latent_dim", latent_dim, int(state["fc_mu.weight"].shape[0]), checkpoint)
            check_setting(name, "ch", ch, int(state["encoder.0.weight"].shape[0]), checkpoint)
    vae = VAE(latent_dim=latent_dim, ch=ch)
    if state is not None:
        load_into(vae, state, checkpoint, f"bigroc's VAE (latent_dim={latent_dim}, ch={ch})")
    return VAEGenerator(vae, num_classes=num_classes).eval()
