"""RobustBench's model zoo as robust classifiers: ``classifier=robustbench classifier.name=NAME``.

RobustBench (Croce et al. 2021) publishes adversarially trained CIFAR-10 classifiers and
their AutoAttack accuracies. :data:`CIFAR10_L2` lists the L2 entries whose architecture
:mod:`bigroc.models.robustbench_archs` reproduces (20 of its 21); their published clean and
robust (AutoAttack, L2 eps 0.5 in [0, 1] pixel units) accuracies are RobustBench's
``model_info/cifar10/L2/<name>.json`` (github.com/RobustBench/robustbench, March 2025).

Weights are read where RobustBench's ``load_model`` keeps them,
``<model_dir>/<dataset>/<threat_model>/<name>.pt``, weights-only; nothing is downloaded
(``robustbench.utils.load_model(...)`` fetches a file where the internet is reachable).
As RobustBench does, the file's ``state_dict`` (or ``model_state_dict``) is unwrapped and
``module.`` / ``model.`` prefixes dropped; unlike RobustBench, the network then loads
strictly. Every model takes [0, 1] images: its normalisation (per-channel mean/std, none,
or per-image standardisation) becomes the :class:`~bigroc.models.Classifier`'s normaliser.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from bigroc.models.classifier import Classifier
from bigroc.models.resnet import CifarResNet
from bigroc.models.robustbench_archs import DMPreActResNet, DMWideResNet, PreActResNet, WideResNet
from bigroc.safe_load import check_float_weights, read_torch_file

PREFIX = "robustbench:"
SOURCE = "RobustBench model_info/<dataset>/<threat_model>/<name>.json (github.com/RobustBench/robustbench)"
FAMILIES: dict[str, type[nn.Module]] = {
    "dm_wide_resnet": DMWideResNet, "dm_preact_resnet": DMPreActResNet, "wide_resnet": WideResNet,
    "preact_resnet": PreActResNet, "resnet": CifarResNet,
}
Stats = tuple[float, float, float]


@dataclass(frozen=True)
class Normalization:
    """What a model does to its [0, 1] input first.

    ``kind``: ``mean_std`` ((x - mean) / std per channel), ``none``, or ``per_image`` (each
    image minus its mean, over its std, as MMA training did). ``in_file``: RobustBench's
    class keeps mean/std as ``mu``/``sigma`` buffers, which a file may carry (and then wins).
    """

    kind: str
    mean: Stats = (0.0, 0.0, 0.0)
    std: Stats = (1.0, 1.0, 1.0)
    in_file: bool = False


NONE, PER_IMAGE = Normalization("none"), Normalization("per_image")
DEEPMIND = Normalization("mean_std", (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
RICE = Normalization("mean_std", (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), in_file=True)
MADRY = Normalization("mean_std", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), in_file=True)
AUGUSTIN = Normalization("mean_std", (0.4913997551666284, 0.48215855929893703, 0.4465309133731618),
                         (0.24703225141799082, 0.24348516474564, 0.26158783926049628), in_file=True)
RONY = Normalization("mean_std", (0.491, 0.482, 0.447), (0.247, 0.243, 0.262), in_file=True)


@dataclass(frozen=True)
class ZooModel:
    """One RobustBench entry: how to build it and what RobustBench published for it."""

    family: str                 # a key of FAMILIES
    kwargs: Mapping[str, Any] = field(hash=False)
    normalization: Normalization
    architecture: str           # as RobustBench's leaderboard names it
    params: int                 # trainable parameters
    clean_acc: float            # %, CIFAR-10 test set
    robust_acc: float           # %, AutoAttack at L2 eps 0.5 ([0, 1] pixel units)


def _dm(depth: int, width: int, *acc: float) -> ZooModel:
    params = {(70, 16): 266_796_506, (28, 10): 36_479_194}[depth, width]
    return ZooModel("dm_wide_resnet", {"depth": depth, "width": width}, DEEPMIND, f"WideResNet-{depth}-{width}",
                    params, *acc)


def _wrn(depth: int, width: int, norm: Normalization, *acc: float) -> ZooModel:
    params = {(28, 10): 36_479_194, (34, 10): 46_160_474, (28, 4): 5_849_050}[depth, width]
    return ZooModel("wide_resnet", {"depth": depth, "widen_factor": width}, norm, f"WideResNet-{depth}-{width}",
                    params, *acc)


_DM_R18 = ZooModel("dm_preact_resnet", {"depth": 18}, DEEPMIND, "PreActResNet-18", 12_548_426, 0, 0)
_RESNET50 = ZooModel("resnet", {"depth": 50}, MADRY, "ResNet-50", 23_520_842, 0, 0)
CIFAR10_L2: dict[str, ZooModel] = {
    "Augustin2020Adversarial": replace(_RESNET50, normalization=AUGUSTIN, clean_acc=91.08, robust_acc=72.91),
    "Engstrom2019Robustness": replace(_RESNET50, clean_acc=90.83, robust_acc=69.24),
    "Rice2020Overfitting": ZooModel("preact_resnet", {"num_blocks": (2, 2, 2, 2), "bn_before_fc": True,
                                                      "project_activated": True},
                                    RICE, "PreActResNet-18", 11_172_170, 88.67, 67.68),
    "Rony2019Decoupling": _wrn(28, 10, RONY, 89.05, 66.44),
    "Standard": _wrn(28, 10, NONE, 94.78, 0.0),
    "Ding2020MMA": _wrn(28, 4, PER_IMAGE, 88.02, 66.09),
    "Wu2020Adversarial": _wrn(34, 10, NONE, 88.51, 73.66),
    "Gowal2020Uncovering": _dm(70, 16, 90.90, 74.50),
    "Gowal2020Uncovering_extra": _dm(70, 16, 94.74, 80.53),
    "Sehwag2021Proxy": _wrn(34, 10, NONE, 90.93, 77.24),
    "Sehwag2021Proxy_R18": ZooModel("resnet", {"depth": 18}, NONE, "ResNet-18", 11_173_962, 89.76, 74.41),
    "Rebuffi2021Fixing_70_16_cutmix_ddpm": _dm(70, 16, 92.41, 80.42),
    "Rebuffi2021Fixing_28_10_cutmix_ddpm": _dm(28, 10, 91.79, 78.80),
    "Rebuffi2021Fixing_70_16_cutmix_extra": _dm(70, 16, 95.74, 82.32),
    "Augustin2020Adversarial_34_10": _wrn(34, 10, AUGUSTIN, 92.23, 76.25),
    "Augustin2020Adversarial_34_10_extra": _wrn(34, 10, AUGUSTIN, 93.96, 78.79),
    "Rebuffi2021Fixing_R18_cutmix_ddpm": replace(_DM_R18, clean_acc=90.33, robust_acc=75.86),
    "Rade2021Helper_R18_ddpm": replace(_DM_R18, clean_acc=90.57, robust_acc=76.15),
    "Wang2023Better_WRN-28-10": _dm(28, 10, 95.16, 83.68),
    "Wang2023Better_WRN-70-16": _dm(70, 16, 95.54, 84.97),
}
ZOO: dict[tuple[str, str], dict[str, ZooModel]] = {("cifar10", "L2"): CIFAR10_L2}


def label(dataset: str, threat_model: str, name: str) -> str:
    """How runs name the classifier (metrics.json): ``robustbench:cifar10/L2/NAME``."""
    return f"{PREFIX}{dataset}/{threat_model}/{name}"


def weights_path(model_dir: str | os.PathLike, dataset: str, threat_model: str, name: str) -> Path:
    """RobustBench's layout: ``<model_dir>/<dataset>/<threat_model>/<name>.pt``."""
    return Path(model_dir) / dataset / threat_model / f"{name}.pt"


def zoo_model(name: str, dataset: str = "cifar10", threat_model: str = "L2") -> ZooModel:
    """The table entry of ``name``; a one-line ValueError listing the supported names if none."""
    models = ZOO.get((dataset, threat_model))
    if models is None:
        known = ", ".join(f"dataset={d} threat_model={t}" for d, t in ZOO)
        raise ValueError(f"RobustBench models of dataset={dataset} threat_model={threat_model} are not supported; "
                         f"supported: {known}")
    if name not in models:
        raise ValueError(f"unknown RobustBench model {name!r} for {dataset}/{threat_model}; supported: "
                         f"{', '.join(models)}")
    return models[name]


def build_network(model: ZooModel) -> nn.Module:
    """A freshly initialised network of ``model``'s family (normalised input -> logits)."""
    return FAMILIES[model.family](**model.kwargs)


class PerImageStandardize(nn.Module):
    """Each image minus its mean over its standard deviation (unbiased), the std floored at
    1/sqrt(C*H*W) (MMA training's input transform; RobustBench's ``Ding2020MMA``).

    Shape:
        x: (N, C, H, W) in [0, 1]; returns the same shape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        floor = torch.ones_like(std) / (x.shape[1] * x.shape[2] * x.shape[3]) ** 0.5
        return (x - mean) / torch.max(std, floor)


def network_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The weights in a RobustBench checkpoint: ``state_dict`` / ``model_state_dict`` or the
    object itself, without ``module.`` and ``model.`` prefixes."""
    if isinstance(obj, Mapping):
        obj = next((obj[k] for k in ("state_dict", "model_state_dict") if isinstance(obj.get(k), Mapping)), obj)
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{path} holds no network weights: expected a state dict (or one under 'state_dict' / "
                         f"'model_state_dict'); found {found}")
    return {re.sub(r"^(module\.)?(model\.)?", "", str(k)): v for k, v in obj.items()}


def _split_stats(state: dict[str, torch.Tensor], norm: Normalization) -> tuple[dict, Stats, Stats]:
    """The network's weights, and the mean/std: the file's ``mu``/``sigma`` where RobustBench's
    class keeps them as buffers and the file has them, else the table's."""
    if not (norm.in_file and "mu" in state and "sigma" in state):
        return state, norm.mean, norm.std
    net = {k: v for k, v in state.items() if k not in ("mu", "sigma")}
    return net, tuple(state["mu"].flatten().tolist()), tuple(state["sigma"].flatten().tolist())


def wrap(net: nn.Module, norm: Normalization, *, mean: Stats, std: Stats, input_size: int | None) -> Classifier:
    """``net`` behind its normalisation, as a [0, 1]-input :class:`Classifier`."""
    identity = norm.kind != "mean_std"
    classifier = Classifier(net, mean=(0.0,) * 3 if identity else mean, std=(1.0,) * 3 if identity else std,
                            input_size=input_size)
    if norm.kind == "per_image":
        classifier.normalizer = PerImageStandardize()
    return classifier


def read_zoo_weights(path: Path, model: ZooModel, *, input_size: int | None = None,
                     allow_unsafe_pickle: bool = False) -> Classifier:
    """``model``'s classifier with the weights of the RobustBench checkpoint ``path``.

    Raises:
        ValueError: one line naming the file: unreadable, not a state dict, weights that
            are not floating-point, or weights that do not fit ``model.architecture``.
    """
    obj = read_torch_file(path, what="RobustBench checkpoint", allow_unsafe_pickle=allow_unsafe_pickle,
                          unsafe_hint="set classifier.allow_unsafe_pickle=true")
    state = network_state(obj, path)
    check_float_weights(state, path, integer_ok=lambda key: key.endswith("num_batches_tracked"))
    net_state, mean, std = _split_stats(state, model.normalization)
    net = build_network(model)
    try:
        net.load_state_dict(net_state, strict=True)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ValueError(f"{path}: weights do not fit a {model.architecture} ({model.family}): {first[:200]}") from None
    return wrap(net, model.normalization, mean=mean, std=std, input_size=input_size).eval()


def load_robustbench(name: str, *, dataset: str = "cifar10", threat_model: str = "L2",
                     model_dir: str | os.PathLike = "models", input_size: int | None = None,
                     allow_unsafe_pickle: bool = False) -> Classifier:
    """RobustBench's ``name`` as a [0, 1]-input classifier in eval mode on the CPU.

    Its table entry and the published numbers are in ``.meta``. Missing weights: a
    FileNotFoundError naming the exact path and how RobustBench fetches the file.
    """
    model = zoo_model(name, dataset, threat_model)
    path = weights_path(model_dir, dataset, threat_model, name)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file; classifier=robustbench reads RobustBench's weights of {name} there (RobustBench's "
            f"layout <model_dir>/<dataset>/<threat_model>/<name>.pt); fetch them where the internet is reachable with "
            f"robustbench.utils.load_model(model_name='{name}', dataset='{dataset}', threat_model='{threat_model}', "
            f"model_dir='{model_dir}') and copy the file here, or set classifier.model_dir")
    classifier = read_zoo_weights(path, model, input_size=input_size, allow_unsafe_pickle=allow_unsafe_pickle)
    classifier.meta = {"source": "robustbench", "name": name, "dataset": dataset, "threat_model": threat_model,
                       "architecture": model.architecture, "params": model.params, "clean_acc": model.clean_acc,
                       "robust_acc": model.robust_acc, "published": SOURCE}
    return classifier


def robustbench_classifier(*, name: str, dataset: str = "cifar10", threat_model: str = "L2",
                           model_dir: str = "models", input_size: int | None = None,
                           allow_unsafe_pickle: bool = False, checkpoint: str | None = None) -> Classifier:
    """Hydra target of ``conf/classifier/robustbench.yaml``: :func:`load_robustbench`.

    ``checkpoint`` is the run's name for the classifier (``robustbench:DATASET/THREAT/NAME``,
    recorded in metrics.json), derived in the config from the other keys; a different value
    is refused.
    """
    expected = label(dataset, threat_model, name)
    if checkpoint is not None and checkpoint != expected:
        raise ValueError(f"classifier.checkpoint={checkpoint} but classifier=robustbench names its weights by "
                         f"classifier.name/dataset/threat_model ({expected}); leave classifier.checkpoint unset")
    return load_robustbench(name, dataset=dataset, threat_model=threat_model, model_dir=model_dir,
                            input_size=input_size, allow_unsafe_pickle=allow_unsafe_pickle)


def madry_to_robustbench(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A MadryLab ``robustness`` CIFAR state dict in RobustBench's ``Engstrom2019Robustness`` names.

    ``state``: a checkpoint's ``model`` entry, ``module.model.*`` (the network),
    ``module.normalizer.new_mean/new_std`` (3, 1, 1) and ``module.attacker.*`` (a copy,
    dropped). Returns the network's keys unprefixed plus ``mu``/``sigma`` (1, 3, 1, 1),
    the buffers of RobustBench's class; the weights are shared, not copied.
    """
    clean = {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}
    net = {k.removeprefix("model."): v for k, v in clean.items() if k.startswith("model.")}
    if not net or "normalizer.new_mean" not in clean or "normalizer.new_std" not in clean:
        raise ValueError(f"not a MadryLab state dict (module.model.* and module.normalizer.new_mean/new_std); keys "
                         f"{sorted(state)[:6]}")
    return {"mu": clean["normalizer.new_mean"].reshape(1, 3, 1, 1),
            "sigma": clean["normalizer.new_std"].reshape(1, 3, 1, 1), **net}
