"""Reading generator weights and loading them with short, actionable errors.

Every file loads with ``torch.load(path, map_location="cpu", weights_only=True)`` (or as
safetensors), never by full unpickling. The published layouts accepted:

- a plain state dict (BigGAN-PyTorch ``G.pth`` / ``G_ema.pth``);
- a dict holding it under ``model_state_dict`` (torch-mimicry ``netG_*.pth``) or
  ``state_dict``;
- a ``.safetensors`` file, with an optional JSON sidecar of the same stem (bigroc's own).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from bigroc.safe_load import check_float_weights, read_json_object, read_torch_file, regular_file

StateDict = dict[str, torch.Tensor]
WRAPPER_KEYS = ("model_state_dict", "state_dict")
SHOWN = 5  # keys listed per kind of mismatch


def no_weights_error(name: str, expected: str) -> ValueError:
    return ValueError(
        f"generator '{name}' has no weights: set generator.checkpoint=PATH ({expected}) "
        "or generator.random_init=true (random weights, for tests only)"
    )


def check_weights_choice(name: str, checkpoint: str | os.PathLike | None, random_init: bool, expected: str) -> None:
    """Exactly one of ``checkpoint`` and ``random_init`` must be chosen."""
    if checkpoint is None and not random_init:
        raise no_weights_error(name, expected)
    if checkpoint is not None and random_init:
        raise ValueError(
            f"generator '{name}': generator.checkpoint and generator.random_init=true exclude "
            "each other; drop one"
        )


def _existing(path: str | os.PathLike, name: str) -> Path:
    from bigroc.shipped import resolve

    path = resolve(path).expanduser()  # shipped:NAME -> bigroc/weights/NAME.safetensors
    if not path.exists():
        raise FileNotFoundError(f"generator '{name}': checkpoint {path} does not exist (generator.checkpoint)")
    return regular_file(path, f"generator '{name}' checkpoint (generator.checkpoint)")


def _unwrap(obj: Any, path: Path, expected: str) -> StateDict:
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], path, expected)
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        found = sorted(map(str, obj))[:8]
    else:
        found = type(obj).__name__
    raise ValueError(f"{path} holds no generator state dict: expected {expected}; found {found}")


def read_weights(path: str | os.PathLike, name: str, expected: str) -> tuple[StateDict, dict]:
    """(state dict, sidecar metadata or ``{}``) of a generator checkpoint file."""
    path = _existing(path, name)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:  # truncated or foreign file
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
        side = path.with_suffix(".json")
        meta = read_json_object(side, "generator sidecar (JSON)") if side.exists() else {}
        if not isinstance(meta.get("format", ""), str):
            raise ValueError(f"{side}: format is {json.dumps(meta['format'])[:60]}, not a string; fix the sidecar "
                             "or export the generator again")
        return state, meta
    obj = read_torch_file(path, what=f"generator checkpoint ({expected})")
    return _unwrap(obj, path, expected), {}


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike, expected: str) -> None:
    """``model.load_state_dict(state)`` with a short error naming the file and the mismatch.

    A tensor that is not floating-point where the model's own is (int weights would be cast
    silently) is refused by name.
    """
    own = model.state_dict()
    # keys the network lacks are named by the mismatch check below; the others must match its dtype kind
    check_float_weights(state, path, integer_ok=lambda key: key not in own or not own[key].is_floating_point())
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing: {_listed(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {_listed(unexpected)}" if unexpected else "",
                 f"{len(shapes)} of another shape: {_listed(shapes)}" if shapes else ""]
        raise ValueError(
            f"{path} does not fit {expected}: " + "; ".join(p for p in parts if p)
        )
    model.load_state_dict(state, strict=True)


def check_setting(name: str, key: str, configured: Any, found: Any, path: str | os.PathLike) -> None:
    """Error when a config value disagrees with what the checkpoint's weights imply."""
    if found != configured:
        raise ValueError(
            f"{path} was trained with {key}={found}, but generator.{key}={configured}: "
            f"set generator.{key}={found} (generator '{name}')"
        )
