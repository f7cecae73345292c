"""classifier=robustbench: RobustBench's model zoo, loaded by name, against RobustBench's own classes.

RobustBench's package imports timm and torchvision at ``import robustbench``; its
architecture files import only torch, so they are loaded by file path, and the model
classes and the L2 table of its ``model_zoo/cifar10.py`` are taken from that file's source
(the classes and the ``l2`` assignment, without the module's imports).
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from bigroc.models import load_classifier
from bigroc.models.fast import attack_ready
from bigroc.models.robustbench import (CIFAR10_L2, MADRY, build_network, load_robustbench,
                                       madry_to_robustbench, read_zoo_weights, robustbench_classifier, weights_path)
from bigroc.run_state import run_digest, run_identity
from cli import entry
from test_configs import compose_cfg

X = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
RICE = "Rice2020Overfitting"


def _exec_parts(path: Path, ns: dict, keep) -> None:
    for node in ast.parse(path.read_text()).body:
        if keep(node):
            try:
                exec(compile(ast.Module([node], []), str(path.name), "exec"), ns)
            except NameError:  # a class built on an architecture these tests do not load
                pass


@pytest.fixture(scope="module")
def rb() -> dict:
    """RobustBench's architectures, its CIFAR-10 model classes and its ``l2`` table (``ns["l2"]``)."""
    spec = importlib.util.find_spec("robustbench")
    if spec is None:
        if os.environ.get("CI"):
            raise ModuleNotFoundError("robustbench is missing: pip install --no-deps robustbench==1.1.1")
        pytest.skip("robustbench is not installed: pip install --no-deps robustbench==1.1.1")
    zoo = Path(spec.submodule_search_locations[0]) / "model_zoo"
    ns = {"torch": torch, "nn": nn, "OrderedDict": OrderedDict}
    for name in ("dm_wide_resnet", "wide_resnet", "resnet"):
        file_spec = importlib.util.spec_from_file_location(f"robustbench_arch_{name}",
                                                           zoo / "architectures" / f"{name}.py")
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
        ns.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    _exec_parts(zoo / "cifar10.py", ns, lambda node: isinstance(node, ast.ClassDef) or (
        isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["l2"]))
    return ns


def warm(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics: a few training-mode batches, then eval mode."""
    model.train()
    with torch.no_grad():
        for i in range(2):
            model(torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(10 + i)))
    return model.eval()


def logits(model: nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def assert_same_logits(ours: nn.Module, theirs: nn.Module) -> None:
    """Equal logits in float32 (as served) and, tighter, in float64: random networks' logits
    vary little with the input (about 1e-3), so only float64 leaves no room for a real
    difference (a mean or std off in the 4th digit moves them by 1e-5)."""
    torch.testing.assert_close(logits(ours), logits(theirs), atol=1e-5, rtol=0)
    wide = [copy.deepcopy(m).double() for m in (ours, theirs)]
    torch.testing.assert_close(logits(wide[0], X.double()), logits(wide[1], X.double()), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CIFAR10_L2))
def test_table_builds_robustbench_parameter_names(rb, name):
    """Every supported name: our network has the keys and shapes of RobustBench's model (less
    the mean/std buffers, which become the normaliser), the table's normalisation and size."""
    model = CIFAR10_L2[name]
    with torch.device("meta"):
        ours = build_network(model).state_dict()
        theirs = rb["l2"][name]["model"]()
    state = theirs.state_dict()
    assert ("mu" in state) == model.normalization.in_file
    assert {k: v.shape for k, v in state.items() if k not in ("mu", "sigma")} == {k: v.shape for k, v in ours.items()}
    assert sum(p.numel() for p in theirs.parameters()) == model.params
    if model.normalization.in_file:
        cpu = rb["l2"][name]["model"]()  # buffer values: meta tensors have none
        assert torch.allclose(cpu.mu.flatten(), torch.tensor(model.normalization.mean))
        assert torch.allclose(cpu.sigma.flatten(), torch.tensor(model.normalization.std))
    if model.family.startswith("dm_"):
        assert (model.normalization.mean, model.normalization.std) == (rb["CIFAR10_MEAN"], rb["CIFAR10_STD"])
        assert type(theirs.relu).__name__ in ("Swish", "SiLU")  # x * sigmoid(x), our "silu"


# name, small kwargs (None: the entry's own), RobustBench's model
FAMILIES = [
    ("Wang2023Better_WRN-28-10", {"depth": 10, "width": 1},
     lambda ns: ns["DMWideResNet"](depth=10, width=1, activation_fn=nn.SiLU)),
    ("Gowal2020Uncovering", {"depth": 10, "width": 2}, lambda ns: ns["DMWideResNet"](depth=10, width=2,
                                                                                      activation_fn=ns["Swish"])),
    ("Rebuffi2021Fixing_R18_cutmix_ddpm", None, lambda ns: ns["l2"]["Rebuffi2021Fixing_R18_cutmix_ddpm"]["model"]()),
    ("Standard", {"depth": 10, "widen_factor": 2}, lambda ns: ns["WideResNet"](depth=10, widen_factor=2)),
    ("Rony2019Decoupling", {"depth": 10, "widen_factor": 2},
     lambda ns: ns["Rony2019DecouplingNet"](depth=10, widen_factor=2)),
    ("Ding2020MMA", {"depth": 10, "widen_factor": 1}, lambda ns: ns["Ding2020MMANet"](depth=10, widen_factor=1)),
    (RICE, None, lambda ns: ns["l2"][RICE]["model"]()),
    ("Sehwag2021Proxy_R18", None, lambda ns: ns["l2"]["Sehwag2021Proxy_R18"]["model"]()),
]


@pytest.mark.parametrize("name,kwargs,theirs", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_robustbench_files_load_with_robustbench_logits(rb, tmp_path, name, kwargs, theirs):
    """A random RobustBench model, saved as RobustBench's files are (plain; ``state_dict`` with
    ``module.`` prefixes; without the mean/std buffers), gives its logits on [0, 1] images,
    also through the attack-ready copy the boosting runs."""
    torch.manual_seed(0)
    reference = warm(theirs(rb))
    state = reference.state_dict()
    layouts = {"plain": state, "wrapped": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}}
    if "mu" in state:  # RobustBench's published files of these models carry no mu/sigma
        layouts["no_stats"] = {k: v for k, v in state.items() if k not in ("mu", "sigma")}
    for layout, obj in layouts.items():
        path = weights_path(tmp_path / layout, "cifar10", "L2", name)
        path.parent.mkdir(parents=True)
        torch.save(obj, path)
        if kwargs is None:
            ours = load_robustbench(name, model_dir=tmp_path / layout)
        else:
            ours = read_zoo_weights(path, replace(CIFAR10_L2[name], kwargs=kwargs))
        assert_same_logits(ours, reference)
    wide = copy.deepcopy(ours).double()  # BatchNorm folded into the convolutions: float64, to see past rounding
    torch.testing.assert_close(logits(attack_ready(wide), X.double()), logits(wide, X.double()), atol=1e-10, rtol=0)


def test_engstrom_is_madrylab_resnet50(robustness, rb, tmp_path):
    """A MadryLab CIFAR ResNet-50 checkpoint, and its conversion to RobustBench's names, give
    MadryLab's logits through both loaders and through RobustBench's own class."""
    from robustness.attacker import AttackerModel

    torch.manual_seed(0)
    stats = SimpleNamespace(mean=torch.tensor(MADRY.mean), std=torch.tensor(MADRY.std))
    madry = AttackerModel(robustness.cifar_models.ResNet50(), stats)
    madry.train()
    with torch.no_grad():
        madry(torch.rand(8, 3, 32, 32), with_image=False)
    state = {f"module.{k}": v for k, v in madry.state_dict().items()}
    torch.save({"model": state, "epoch": 150}, tmp_path / "cifar_l2_0_5.pt")
    converted = madry_to_robustbench(state)
    path = weights_path(tmp_path, "cifar10", "L2", "Engstrom2019Robustness")
    path.parent.mkdir(parents=True)
    torch.save(converted, path)

    theirs = rb["l2"]["Engstrom2019Robustness"]["model"]()
    theirs.load_state_dict(converted, strict=True)
    ours = load_robustbench("Engstrom2019Robustness", model_dir=tmp_path)
    assert_same_logits(ours, theirs)
    published = weights_path(tmp_path / "published", "cifar10", "L2", "Engstrom2019Robustness")
    published.parent.mkdir(parents=True)  # RobustBench's own file: no mu/sigma, its class's values
    torch.save({k: v for k, v in converted.items() if k not in ("mu", "sigma")}, published)
    assert_same_logits(load_robustbench("Engstrom2019Robustness", model_dir=tmp_path / "published"), theirs)
    assert_same_logits(ours, load_classifier(tmp_path / "cifar_l2_0_5.pt"))
    with torch.no_grad():
        torch.testing.assert_close(logits(ours), madry.eval()(X, with_image=False), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def rice_dir(tmp_path_factory) -> Path:
    """A model_dir holding random weights under a real name (a PreAct ResNet-18, the smallest
    L2 entries), saved as RobustBench's class saves them (mean/std as ``mu``/``sigma``)."""
    torch.manual_seed(0)
    model = CIFAR10_L2[RICE]
    net = warm(build_network(model))
    state = {"mu": torch.tensor(model.normalization.mean).view(1, 3, 1, 1),
             "sigma": torch.tensor(model.normalization.std).view(1, 3, 1, 1), **net.state_dict()}
    root = tmp_path_factory.mktemp("robustbench")
    path = weights_path(root, "cifar10", "L2", RICE)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return root


def test_config_loads_by_name_and_the_run_identity_covers_the_file(rice_dir):
    cfg = compose_cfg("boost", ["classifier=robustbench", f"classifier.name={RICE}",
                                f"classifier.model_dir={rice_dir}"])
    classifier = instantiate(cfg.classifier)
    assert cfg.classifier.checkpoint == f"robustbench:cifar10/L2/{RICE}"
    assert classifier.meta["architecture"] == "PreActResNet-18" and classifier.meta["robust_acc"] == 67.68
    torch.testing.assert_close(logits(classifier), logits(load_robustbench(RICE, model_dir=rice_dir)), atol=0, rtol=0)
    path = weights_path(rice_dir, "cifar10", "L2", RICE)
    before = run_identity(cfg)
    assert before["files"]["classifier.checkpoint"][0] == path.stat().st_size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # the file was replaced
    assert run_digest(run_identity(cfg)) != run_digest(before)
    with pytest.raises(ValueError, match="leave classifier.checkpoint unset"):
        robustbench_classifier(name=RICE, model_dir=str(rice_dir), checkpoint="robustbench:cifar10/L2/Standard")


def test_missing_file_names_the_path_and_robustbench(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_robustbench("Wang2023Better_WRN-70-16", model_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "cifar10" / "L2" / "Wang2023Better_WRN-70-16.pt") in message
    assert "robustbench.utils.load_model(model_name='Wang2023Better_WRN-70-16'" in message


def test_unknown_names_and_wrong_files_are_refused_in_one_line(rice_dir, tmp_path):
    for kwargs, needle in (({"name": "Amini2024MeanSparse_S-WRN-70-16"}, "supported: Augustin2020Adversarial, "),
                           ({"name": RICE, "threat_model": "Linf"}, "supported: dataset=cifar10 threat_model=L2")):
        with pytest.raises(ValueError, match=needle) as err:
            load_robustbench(model_dir=rice_dir, **kwargs)
        assert "\n" not in str(err.value)
    wrong = weights_path(tmp_path, "cifar10", "L2", "Sehwag2021Proxy_R18")  # a PreAct ResNet under a ResNet's name
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(weights_path(rice_dir, "cifar10", "L2", RICE).read_bytes())
    with pytest.raises(ValueError, match=r"weights do not fit a ResNet-18 \(resnet\)") as err:
        load_robustbench("Sehwag2021Proxy_R18", model_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_run_boost_with_a_robustbench_classifier(rice_dir, tmp_path):
    out = tmp_path / "run"
    done = entry("run_boost.py", ["classifier=robustbench", f"classifier.name={RICE}",
                                  f"classifier.model_dir={rice_dir}", "metrics=none", "logger=none", "num_samples=4",
                                  "steps=2", "calibration.samples=4", "batch_size=4",
                                  "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"],
                 tmp_path, env={"BIGROC_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classifier"] == f"robustbench:cifar10/L2/{RICE}" and metrics["steps"] == 2
    with np.load(out / "samples_boosted.npz") as f:
        assert f["arr_0"].shape == (4, 32, 32, 3)


def test_readme_table_lists_every_supported_name_with_its_published_accuracies():
    """The README's table is this module's table (no second copy to drift)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| ([\d.]+)M \| ([\d.]+) / ([\d.]+) \|$", readme, re.M)
    assert {r[0] for r in rows} == set(CIFAR10_L2)
    for name, arch, params, clean, robust in rows:
        model = CIFAR10_L2[name]
        assert (arch.strip(), float(clean), float(robust)) == (model.architecture, model.clean_acc, model.robust_acc)
        assert abs(float(params) - model.params / 1e6) < 0.05
