"""Reading classifier checkpoints (writing them: :mod:`bigroc.models.export`).

``load_classifier`` reads three kinds of file and infers the architecture from the weights:

- the project's export: ``NAME.safetensors`` (the :class:`Classifier` state dict,
  normaliser included) with ``NAME.json`` beside it (architecture, normalisation, dataset,
  training eps, measured accuracies: whatever the exporter recorded);
- MadryLab ``robustness`` checkpoints: a dict with ``model`` (or ``state_dict``) holding
  ``module.model.*``, ``module.attacker.model.*`` and ``module.normalizer.new_mean/new_std``;
- plain state dicts of a CIFAR or ImageNet ResNet (``module.`` prefixes allowed), with the
  normalisation given by the caller or the family's default.

Pickled files load with ``torch.load(weights_only=True)``. Files that need full unpickling
(some published MadryLab files were saved with ``dill``) load only with
``allow_unsafe_pickle=True``, which runs code from the file and says so in a warning.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from bigroc.images import MAX_SIDE
from bigroc.models.classifier import DEFAULT_STATS, Classifier, arch_name, build_classifier, parse_arch
from bigroc.safe_load import check_float_weights, read_json_object, read_torch_file, regular_file
from bigroc.shipped import resolve as resolve_shipped
from bigroc.shipped import shipped_weights
from bigroc.models.resnet import DEPTHS

SIDECAR_FORMAT = "bigroc-classifier"
StateDict = dict[str, torch.Tensor]
# The sidecar keys bigroc writes, and the JSON each must be (checked when present).
_NUMBER = (int, float)
SIDECAR_TYPES = {
    "format": ((str,), "a string"),
    "arch": ((str,), "a string"),
    "num_classes": ((int,), "an integer"),
    "width": (_NUMBER, "a number"),
    "input_size": ((int, type(None)), f"an integer in [1, {MAX_SIDE}] or null"),
}


def sidecar_path(path: str | os.PathLike) -> Path:
    """``weights.safetensors`` -> ``weights.json``."""
    return Path(path).with_suffix(".json")


def _read_pickle(path: Path, allow_unsafe_pickle: bool) -> Any:
    return read_torch_file(path, what="classifier checkpoint", allow_unsafe_pickle=allow_unsafe_pickle,
                           unsafe_hint="pass allow_unsafe_pickle=True (config: classifier.allow_unsafe_pickle=true)")


def _read_safetensors(path: Path) -> tuple[StateDict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file (truncated?): {err}") from None
    side = sidecar_path(path)
    meta = check_sidecar(read_json_object(side, "classifier sidecar (JSON)"), side) if side.exists() else {}
    return state, meta


def check_sidecar(meta: dict, side: Path) -> dict:
    """``meta`` after checking the JSON types of the keys bigroc writes (and ``mean``/``std``:
    three numbers); a wrong one is named with the type expected."""
    for key, (types, expected) in SIDECAR_TYPES.items():
        value = meta.get(key)
        if key in meta and (isinstance(value, bool) or not isinstance(value, types)):
            raise ValueError(f"{side}: {key} is {json.dumps(value)[:60]}, not {expected}; fix the sidecar or "
                             "export the classifier again")
    size = meta.get("input_size")
    if size is not None and not 1 <= size <= MAX_SIDE:
        raise ValueError(f"{side}: input_size is {size}, outside [1, {MAX_SIDE}]; fix the sidecar or export the "
                         "classifier again")
    for key in ("mean", "std"):
        value = meta.get(key)
        if key in meta and not (isinstance(value, list) and len(value) == 3
                                and all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"{side}: {key} is {json.dumps(value)[:60]}, not a list of three numbers; fix the "
                             "sidecar or export the classifier again")
    return meta


def _state_dict_of(obj: Any, path: Path) -> StateDict:
    """The tensors of a checkpoint object: MadryLab's ``model``/``state_dict`` or itself."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], (Mapping, torch.nn.Module)):
                return _state_dict_of(obj[key], path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return dict(tensors)
    found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"{path} holds no classifier weights: expected a MadryLab checkpoint (key 'model' or "
        f"'state_dict'), a bigroc export, or a ResNet state dict; found {found}"
    )


def _split_normalizer(state: StateDict) -> tuple[StateDict, tuple | None]:
    """Strip ``module.`` prefixes, drop MadryLab's attacker copy, split off the normaliser."""
    clean = {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}
    clean = {k: v for k, v in clean.items() if not k.startswith("attacker.")}
    if not any(k.startswith("model.") for k in clean):
        return clean, None
    net = {k[len("model.") :]: v for k, v in clean.items() if k.startswith("model.")}
    stats = None
    if "normalizer.new_mean" in clean and "normalizer.new_std" in clean:
        stats = (clean["normalizer.new_mean"].flatten().tolist(), clean["normalizer.new_std"].flatten().tolist())
    return net, stats


def infer_arch(state: Mapping[str, torch.Tensor]) -> tuple[str, int, float]:
    """(arch, num_classes, width) of a ResNet state dict without prefixes.

    Raises ``ValueError`` when the keys are not those of a CIFAR or ImageNet ResNet.
    """
    head = "linear" if "linear.weight" in state else "fc" if "fc.weight" in state else None
    if head is None or "conv1.weight" not in state:
        keys = sorted(state)[:6]
        raise ValueError(f"not a ResNet state dict (no conv1.weight with linear/fc head); keys {keys}")
    family = "cifar" if head == "linear" else "imagenet"
    block = "Bottleneck" if "layer1.0.conv3.weight" in state else "BasicBlock"
    counts = tuple(
        len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5)
    )
    depth = next((d for d, (b, c) in DEPTHS.items() if b.__name__ == block and c == counts), None)
    if depth is None:
        raise ValueError(f"unknown ResNet layout: {block} blocks per stage {counts}")
    width = state["conv1.weight"].shape[0] / 64
    return arch_name(family, depth), int(state[f"{head}.weight"].shape[0]), width


def arch_of(classifier: Classifier) -> str:
    """The arch name of a built classifier (``resnet18``, ``imagenet_resnet50``, ...)."""
    net = classifier.model
    return arch_name("cifar" if hasattr(net, "linear") else "imagenet", net.depth)


def load_classifier(
    path: str | os.PathLike,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    allow_unsafe_pickle: bool = False,
) -> Classifier:
    """Load a classifier from any supported checkpoint (see the module docstring).

    Args:
        path: ``.safetensors`` export, MadryLab ``.pt``, a plain state dict file, or
            ``shipped:NAME`` for a classifier shipped in the package (:func:`shipped_classifier`).
        mean, std: normalisation for files that carry none (plain state dicts); ignored
            when the file has its own. Defaults: the family's (CIFAR-10 or ImageNet).
        input_size: resize images to this size inside the classifier (see
            :class:`Classifier`); default: the sidecar's value, else none.
        allow_unsafe_pickle: allow full unpickling (runs code from the file; warns).

    Returns:
        The classifier in eval mode on the CPU, with the sidecar's contents (or ``{}``)
        in ``.meta``.

    Raises:
        ValueError: one line naming the file: not a regular file, unreadable, weights that
            are not floating-point (BatchNorm's step counters aside), a sidecar of wrong
            JSON types, weights that fit no ResNet.
    """
    path = resolve_shipped(path)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"classifier checkpoint {path} does not exist; set classifier.checkpoint to a "
            ".safetensors export, a MadryLab .pt checkpoint or a state-dict file"
        )
    regular_file(path, "classifier checkpoint (classifier.checkpoint)")
    meta: dict = {}
    if path.suffix == ".safetensors":
        raw, meta = _read_safetensors(path)
    else:
        raw = _state_dict_of(_read_pickle(path, allow_unsafe_pickle), path)
    check_float_weights(raw, path, integer_ok=lambda key: key.endswith("num_batches_tracked"))
    net_state, stats = _split_normalizer(raw)
    try:
        arch, num_classes, width = infer_arch(net_state)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    family, _ = parse_arch(arch)
    if stats is None:
        stats = (mean or DEFAULT_STATS[family][0], std or DEFAULT_STATS[family][1])
    classifier = build_classifier(
        arch,
        num_classes=num_classes,
        width=width,
        mean=stats[0],
        std=stats[1],
        input_size=input_size if input_size is not None else meta.get("input_size"),
    )
    try:
        classifier.model.load_state_dict(net_state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise ValueError(f"{path}: weights do not fit a {arch} (width {width}): {first[:200]}") from None
    classifier.meta = meta
    return classifier.eval()


def classifier_from_config(
    *,
    arch: str,
    num_classes: int = 10,
    width: float = 1.0,
    input_size: int | None = None,
    checkpoint: str | None = None,
    allow_unsafe_pickle: bool = False,
) -> Classifier:
    """Hydra target of ``conf/classifier/*``: load ``checkpoint`` if given, else build fresh.

    A checkpoint's own architecture wins; a mismatch with ``arch``/``num_classes``/``width``
    is reported in a warning so a wrong config group is noticed.
    """
    if checkpoint is None:
        return build_classifier(arch, num_classes=num_classes, width=width, input_size=input_size)
    classifier = load_classifier(
        checkpoint, input_size=input_size, allow_unsafe_pickle=allow_unsafe_pickle
    )
    net = classifier.model
    found = (arch_of(classifier), net.num_classes, net.width)
    if found != (arch, num_classes, width):
        warnings.warn(
            f"{checkpoint} holds a {found[0]} (width {found[2]}, {found[1]} classes); using it "
            f"instead of the configured {arch} (width {width}, {num_classes} classes)",
            stacklevel=2,
        )
    return classifier


def shipped_classifier(name: str = "classifier_cifar10_l2") -> Path:
    """Path of a classifier that ships inside the package (``bigroc/weights/NAME.safetensors``).

    ``classifier_cifar10_l2``: a CPU-trained robust CIFAR-10 ResNet-18 (width 32; the earlier
    width-16 one is ``classifier_cifar10_l2_small``); its JSON
    sidecar records the command, data, wall time, machine and test accuracies.
    """
    return shipped_weights(name)
