"""Writing classifiers: the project's safetensors + JSON export, and MadryLab's layout.

Files are written through a temporary file and a rename, so a killed job never leaves half
a file where a reader expects a whole one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from bigroc.storage import atomic_write
from bigroc.models.checkpoints import SIDECAR_FORMAT, arch_of, sidecar_path
from bigroc.models.classifier import Classifier


def save_classifier(classifier: Classifier, path: str | os.PathLike, *, meta: Mapping[str, Any]) -> Path:
    """Export ``classifier`` as ``path`` (.safetensors) plus a JSON sidecar beside it.

    The sidecar records the architecture and normalisation read off the classifier, then
    everything in ``meta`` (dataset, training eps, measured accuracies, command, ...).
    Returns the sidecar's path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"export path must end in .safetensors, got {path}")
    net = classifier.model
    state = {k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    sidecar = {
        "format": SIDECAR_FORMAT,
        "arch": arch_of(classifier),
        "num_classes": classifier.num_classes,
        "width": net.width,
        "mean": classifier.normalizer.new_mean.flatten().tolist(),
        "std": classifier.normalizer.new_std.flatten().tolist(),
        "input_size": classifier.input_size,
        **dict(meta),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    side = sidecar_path(path)
    atomic_write(side, lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n"))
    return side


def save_madry_checkpoint(classifier: Classifier, path: str | os.PathLike, *, epoch: int) -> Path:
    """Export in MadryLab ``robustness``'s layout, for their tools.

    Writes ``{"model": state, "epoch": epoch}`` where ``state`` has the keys of a
    ``DataParallel(AttackerModel)``: ``module.normalizer.*``, ``module.model.*``,
    ``module.attacker.normalize.*`` and ``module.attacker.model.*``. Their
    ``make_and_restore_model(arch=..., resume_path=path)`` reads it (CIFAR archs).
    """
    net = {k: v.detach().cpu() for k, v in classifier.model.state_dict().items()}
    norm = {k: v.detach().cpu() for k, v in classifier.normalizer.state_dict().items()}
    state = {}
    for prefix, part in (("normalizer.", norm), ("model.", net), ("attacker.normalize.", norm), ("attacker.model.", net)):
        state.update({f"module.{prefix}{k}": v for k, v in part.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save({"model": state, "epoch": epoch}, tmp))
    return path
