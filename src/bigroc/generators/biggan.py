"""BigGAN-PyTorch's 32x32 generator (CIFAR), with its parameter and buffer names.

BigGAN-PyTorch's CIFAR recipe (``launch_cifar_ema.sh``; DiffAugment-BigGAN's CIFAR scripts
are the same) trains ``Generator(resolution=32, G_ch=64, dim_z=128)`` with spectral norm,
no attention, no shared embedding and no hierarchical z:

    linear: SNLinear(dim_z, 4*4*4ch) -> (4ch, 4, 4)
    blocks.{0,1,2}.0: GBlock(4ch -> 4ch): ccbn-ReLU-upsample(nearest)-conv1-ccbn-ReLU-conv2,
        plus upsample-conv_sc (1x1); all convs spectrally normalised
    output_layer: bn (.0) -> ReLU -> SNConv2d(4ch, 3) (.2) -> tanh

Spectral norm keeps BigGAN's own buffers ``u0`` (left singular vector) and ``sv0`` (a
logged singular value) and runs one power iteration from ``u0`` at every forward, also in
eval mode; ``u0`` is never updated here (these modules only sample). Class-conditional
batch norm (``ccbn``) scales by ``1 + gain(y)`` and shifts by ``bias(y)``: embeddings of
the label, or (``shared``) bias-free SN linear maps of a shared class embedding
``shared`` (concatenated with a z chunk when ``hier``). Batch statistics live in
``stored_mean``/``stored_var``.

BigGAN-PyTorch samples in train mode (batch statistics) unless ``--G_eval_mode``; here
the generator always runs in eval mode, which makes each image independent of its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bigroc.generators.base import Generator
from bigroc.generators.weights import check_setting, check_weights_choice, load_into, read_weights

SN_EPS = 1e-8  # BigGAN-PyTorch's --SN_eps default
BN_EPS = 1e-5


def sn_weight(weight: torch.Tensor, u: torch.Tensor, eps: float = SN_EPS) -> torch.Tensor:
    """``weight / sigma``, sigma from one power iteration started at ``u`` (1, out)."""
    w = weight.view(weight.shape[0], -1)
    with torch.no_grad():
        v = F.normalize(u @ w, eps=eps)
        u_next = F.normalize(v @ w.t(), eps=eps)
    sigma = (v @ w.t() @ u_next.t()).squeeze()
    return weight / sigma


class SNConv2d(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.register_buffer("u0", torch.randn(1, out_channels))
        self.register_buffer("sv0", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, sn_weight(self.weight, self.u0), self.bias)


class SNLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("u0", torch.randn(1, out_features))
        self.register_buffer("sv0", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, sn_weight(self.weight, self.u0), self.bias)


class CCBN(nn.Module):
    """BigGAN's ``ccbn``: affine-free batch norm, then ``(1 + gain(c)) * h + bias(c)``."""

    def __init__(self, channels: int, cond_size: int, shared: bool) -> None:
        super().__init__()
        if shared:  # c: a float vector (shared embedding, maybe with a z chunk)
            self.gain = SNLinear(cond_size, channels, bias=False)
            self.bias = SNLinear(cond_size, channels, bias=False)
        else:  # c: int labels
            self.gain = nn.Embedding(cond_size, channels)
            self.bias = nn.Embedding(cond_size, channels)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, self.training, 0.1, BN_EPS)
        return h * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class BN(nn.Module):
    """BigGAN's plain ``bn``: parameters ``gain``/``bias``, buffers ``stored_mean``/``stored_var``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias, self.training, 0.1,
                            BN_EPS)


class GBlock(nn.Module):
    """BigGAN's up-sampling residual block."""

    def __init__(self, channels: int, cond_size: int, shared: bool) -> None:
        super().__init__()
        self.conv1 = SNConv2d(channels, channels)
        self.conv2 = SNConv2d(channels, channels)
        self.conv_sc = SNConv2d(channels, channels, kernel_size=1, padding=0)
        self.bn1 = CCBN(channels, cond_size, shared)
        self.bn2 = CCBN(channels, cond_size, shared)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class BigGAN32(Generator):
    """BigGAN-PyTorch ``Generator(resolution=32)``; class-conditional, output in [-1, 1].

    Args:
        ch: ``G_ch``, the channel multiplier (blocks have ``4 * ch`` channels).
        dim_z: latent size (with ``hier``, rounded down to a multiple of 4 as BigGAN does).
        num_classes: ``n_classes``.
        shared: ``G_shared``, one class embedding feeding every ccbn through linear maps.
        shared_dim: its size (0: ``dim_z``).
        hier: hierarchical z, one chunk for ``linear`` and one per block.
    """

    NUM_BLOCKS = 3

    def __init__(self, ch: int = 64, dim_z: int = 128, num_classes: int = 10, shared: bool = False,
                 shared_dim: int = 0, hier: bool = False) -> None:
        super().__init__()
        self.ch, self.shared_on, self.hier = int(ch), bool(shared), bool(hier)
        if self.hier and not self.shared_on:
            raise ValueError("BigGAN's hierarchical z (hier) needs the shared embedding (shared=true)")
        self.num_classes, self.conditional = int(num_classes), True
        slots = self.NUM_BLOCKS + 1 if self.hier else 1
        self.z_chunk = int(dim_z) // slots if self.hier else 0
        self.latent_dim = self.z_chunk * slots if self.hier else int(dim_z)
        self.shared_dim = int(shared_dim) if int(shared_dim) > 0 else int(dim_z)
        width = 4 * self.ch
        cond_size = self.shared_dim + self.z_chunk if self.shared_on else self.num_classes
        self.shared = nn.Embedding(self.num_classes, self.shared_dim) if self.shared_on else nn.Identity()
        self.linear = SNLinear(self.latent_dim // slots, width * 16)
        self.blocks = nn.ModuleList(
            nn.ModuleList([GBlock(width, cond_size, self.shared_on)]) for _ in range(self.NUM_BLOCKS))
        self.output_layer = nn.Sequential(BN(width), nn.ReLU(), SNConv2d(width, 3))
        for m in self.modules():  # the CIFAR recipe's --G_init N02
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("BigGAN is class-conditional: forward(z, y) needs labels y")
        c = self.shared(y)
        if self.hier:
            z, *chunks = torch.split(z, self.z_chunk, dim=1)
            conds = [torch.cat([c, chunk], dim=1) for chunk in chunks]
        else:
            conds = [c] * self.NUM_BLOCKS
        h = self.linear(z).view(z.shape[0], 4 * self.ch, 4, 4)
        for blocklist, cond in zip(self.blocks, conds):
            h = blocklist[0](h, cond)
        return torch.tanh(self.output_layer(h))


BIGGAN_FORMAT = "a BigGAN-PyTorch G.pth or G_ema.pth (a plain state dict of Generator(resolution=32))"


def implied_settings(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """``ch``, ``num_classes``, ``shared``, ``shared_dim``, ``hier``, ``dim_z`` of a G state dict."""
    conv = state.get("blocks.0.0.conv1.weight")
    gain = state.get("blocks.0.0.bn1.gain.weight")
    if conv is None or gain is None or "linear.weight" not in state:
        return {}
    found: dict[str, object] = {"ch": int(conv.shape[0]) // 4, "shared": "shared.weight" in state}
    linear_in = int(state["linear.weight"].shape[1])
    if found["shared"]:
        num_classes, shared_dim = state["shared.weight"].shape
        z_chunk = int(gain.shape[1]) - int(shared_dim)
        found.update(num_classes=int(num_classes), hier=z_chunk > 0, shared_dim=int(shared_dim))
        found["dim_z"] = linear_in * (BigGAN32.NUM_BLOCKS + 1) if z_chunk > 0 else linear_in
    else:
        found.update(num_classes=int(gain.shape[0]), hier=False, dim_z=linear_in)
    return found


def _check_layout(state: dict[str, torch.Tensor], path: str) -> None:
    if any(".1.theta." in k or k.endswith(".gamma") for k in state):
        raise ValueError(f"{path} has self-attention layers (G_attn); only BigGAN's CIFAR layout "
                         "(G_attn=0) is supported")
    if any(k.endswith(".u1") for k in state):
        raise ValueError(f"{path} tracks several singular vectors (num_G_SVs > 1); only num_G_SVs=1 is supported")


def build_biggan(name: str, checkpoint: str | None = None, random_init: bool = False, *, ch: int = 64,
                 dim_z: int = 128, num_classes: int = 10, shared: bool = False, shared_dim: int = 0,
                 hier: bool = False) -> BigGAN32:
    """BigGAN (or DiffAugment-BigGAN) for CIFAR, from ``G.pth``/``G_ema.pth`` or untrained."""
    check_weights_choice(name, checkpoint, random_init, BIGGAN_FORMAT)
    state = None
    if checkpoint is not None:
        state, _ = read_weights(checkpoint, name, BIGGAN_FORMAT)
        _check_layout(state, checkpoint)
        found = implied_settings(state)
        configured = dict(ch=ch, num_classes=num_classes, shared=shared, hier=hier, dim_z=dim_z,
                          shared_dim=shared_dim if shared_dim > 0 else dim_z)  # 0 means dim_z
        for key, value in found.items():
            check_setting(name, key, configured[key], value, checkpoint)
    model = BigGAN32(ch=ch, dim_z=dim_z, num_classes=num_classes, shared=shared, shared_dim=shared_dim,
                     hier=hier)
    if state is not None:
        load_into(model, state, checkpoint, f"BigGAN-PyTorch's 32x32 Generator (G_ch={ch})")
    return model.eval()
