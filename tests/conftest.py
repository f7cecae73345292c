"""Shared fixtures: a tiny CIFAR ResNet with non-trivial BatchNorm statistics, and images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bigroc.models import Classifier, build_classifier
from tiny_models import warm_batchnorm

# Nothing is downloaded in tests (the Inception head for IS, in particular): subprocesses too.
os.environ.setdefault("BIGROC_OFFLINE", "1")


@pytest.fixture
def tiny_classifier() -> Classifier:
    torch.manual_seed(0)
    return warm_batchnorm(build_classifier("resnet18", width=0.125))


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.tensor([0, 3, 5, 7, 9, 2])


@pytest.fixture
def robustness(monkeypatch):
    """MadryLab's ``robustness`` library, the reference implementation.

    Installed by ``make setup`` with ``--no-deps`` (it pins torchvision). Missing, the
    cross-checks skip on a developer's machine but fail in CI (``CI`` set), so they cannot
    silently stop running there. Its attacker calls ``.cuda()``; on a CPU that becomes a
    no-op for the duration of the test.
    """
    import importlib
    import os

    if os.environ.get("CI"):
        lib = importlib.import_module("robustness")
    else:
        lib = pytest.importorskip("robustness", reason="pip install --no-deps robustness")
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
        monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *args, **kwargs: self)
    importlib.import_module("robustness.attacker")
    importlib.import_module("robustness.cifar_models")
    return lib


@pytest.fixture
def madry_imagenet_resnet(robustness, monkeypatch):
    """``robustness.imagenet_models.resnet`` loaded on its own: the package's ``__init__``
    also imports models that need torchvision."""
    import importlib.util
    import sys
    import types
    from pathlib import Path

    pkg_dir = Path(robustness.__file__).parent / "imagenet_models"
    pkg = types.ModuleType("robustness.imagenet_models")
    pkg.__path__ = [str(pkg_dir)]
    monkeypatch.setitem(sys.modules, "robustness.imagenet_models", pkg)
    spec = importlib.util.spec_from_file_location("robustness.imagenet_models.resnet", pkg_dir / "resnet.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """A real CIFAR-10 copy (pickle layout), built once from the shared JPEG archive.

    ``BIGROC_CIFAR10_ROOT`` points at an existing copy; otherwise ``make_cifar10.py`` from
    the ``shared/data`` folder beside the repository writes one to ``.cache/`` (~15 s).
    """
    import os
    import subprocess
    import sys

    if os.environ.get("BIGROC_CIFAR10_ROOT"):
        return Path(os.environ["BIGROC_CIFAR10_ROOT"])
    repo = Path(__file__).resolve().parents[1]
    root = repo / ".cache" / "cifar10"
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        maker = repo.parent / "shared" / "data" / "cifar10" / "make_cifar10.py"
        if not maker.exists():
            if os.environ.get("CI"):
                raise FileNotFoundError(f"{maker} is missing: CI needs shared/ beside the repository")
            pytest.skip("no CIFAR-10: set BIGROC_CIFAR10_ROOT or put shared/ beside the repository")
        subprocess.run([sys.executable, str(maker), str(root)], check=True, capture_output=True)
    return root


@pytest.fixture(scope="session")
def external_samples() -> Path:
    """Real CIFAR-10 samples of published generators (ADM-layout npz files) from shared/."""
    import os

    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "external-samples"
    if not (folder / "gc_sngan_res.npz").exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"{folder} is missing: CI needs shared/ beside the repository")
        pytest.skip("no external samples: put shared/ beside the repository")
    return folder


@pytest.fixture(scope="session")
def score_cache(tmp_path_factory) -> Path:
    """One reference-statistics cache for the whole test session (Inception is slow on CPU)."""
    return tmp_path_factory.mktemp("bigroc-cache")
