"""SampleSource: ADM-style .npz files and image folders, with and without labels, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bigroc.generators import build_generator
from bigroc.generators.samples import SampleSource


def pixels(n: int = 12, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def as_float(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_with_labels(tmp_path):
    arr, labels = pixels(), np.arange(12) % 10
    source = build_generator("samples", path=write_npz(tmp_path / "s.npz", arr_0=arr, arr_1=labels))
    assert isinstance(source, SampleSource) and len(source) == 12 and source.conditional
    assert source.image_size == 8
    idx = torch.tensor([5, 0, 11])
    x, y = source.generate(idx, seed=0)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x, as_float(arr[[5, 0, 11]])) and torch.equal(y, torch.tensor([5, 0, 1]))
    assert torch.equal(source.generate(idx, seed=9)[0], x)  # the seed is ignored
    assert torch.equal(source.sample(12)[0], as_float(arr))


def test_npz_without_labels_and_labels_key(tmp_path):
    arr = pixels()
    source = build_generator("samples", path=write_npz(tmp_path / "s.npz", arr_0=arr))
    assert not source.conditional and source.generate(torch.arange(2), 0)[1] is None
    path = write_npz(tmp_path / "k.npz", arr_0=arr, arr_1=np.zeros(12, int), y=np.full(12, 7))
    assert torch.equal(build_generator("samples", path=path, labels_key="y").sample(3)[1], torch.full((3,), 7))
    assert build_generator("samples", path=path, labels_key=None).sample(3)[1] is None


def test_index_beyond_the_samples(tmp_path):
    source = SampleSource(write_npz(tmp_path / "s.npz", arr_0=pixels(4)))
    with pytest.raises(IndexError, match=r"sample index 4 is out of range: .*s.npz holds 4 images"):
        source.generate(torch.tensor([2, 4]), 0)


def write_folder(folder, arr, suffix=".png"):
    folder.mkdir()
    for i, img in enumerate(arr):
        Image.fromarray(img).save(folder / f"img_{i:03d}{suffix}")
    return folder


def test_png_folder_with_text_labels(tmp_path):
    arr = pixels(5)
    folder = write_folder(tmp_path / "pngs", arr)
    Image.fromarray(arr[0]).convert("L").save(folder / "img_005.png")  # grayscale: converted to RGB
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "labels.txt").write_text("3\n1\n4\n1\n5\n9\n")
    source = build_generator("samples", path=str(folder), labels=str(tmp_path / "labels.txt"))
    assert len(source) == 6 and source.conditional and source.image_size == 8
    x, y = source.generate(torch.arange(6), seed=0)
    assert torch.equal(x[:5], as_float(arr)) and torch.equal(y, torch.tensor([3, 1, 4, 1, 5, 9]))
    assert torch.equal(x[5, 0], x[5, 1])  # gray -> equal RGB channels


def test_folder_is_read_in_name_order_with_npy_labels(tmp_path):
    arr = pixels(3)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, img in zip(["b.png", "a.jpg", "c.PNG"], arr):
        Image.fromarray(img).save(folder / name, quality=100)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2]))
    source = SampleSource(folder, labels=tmp_path / "y.npy")
    x, y = source.generate(torch.tensor([1, 2]), 0)
    assert torch.equal(x[0], as_float(arr[[0]])[0]) and torch.equal(x[1], as_float(arr[[2]])[0])
    assert torch.equal(y, torch.tensor([1, 2]))


BAD_NPZ = {
    "dtype": (dict(arr_0=pixels().astype(np.float32)), "arr_0 is float32, not uint8"),
    "nchw": (dict(arr_0=pixels().transpose(0, 3, 1, 2).copy()), r"not \(N, H, W, 3\)"),
    "no_arr_0": (dict(images=pixels()), "has no arr_0"),
    "label_length": (dict(arr_0=pixels(), arr_1=np.arange(5)), "5 labels of shape .* for 12 images"),
    "label_range": (dict(arr_0=pixels(), arr_1=np.arange(12)), r"labels span \[0, 11\], outside \[0, 10\)"),
    "label_dtype": (dict(arr_0=pixels(), arr_1=np.zeros(12)), "labels are float64, not integers"),
    "empty": (dict(arr_0=np.zeros((0, 8, 8, 3), np.uint8)), "holds no images"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz(case, tmp_path):
    arrays, message = BAD_NPZ[case]
    path = write_npz(tmp_path / f"{case}.npz", **arrays)
    with pytest.raises(ValueError, match=message) as err:
        build_generator("samples", path=path)
    assert path in str(err.value) and "\n" not in str(err.value)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="nowhere.npz does not exist; set generator.path"):
        build_generator("samples", path=str(tmp_path / "nowhere.npz"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt is not a readable .npz file"):
        build_generator("samples", path=str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .png/.jpg/.jpeg images"):
        build_generator("samples", path=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="needs generator.path"):
        build_generator("samples")
    with pytest.raises(ValueError, match="takes no generator.checkpoint"):
        build_generator("samples", checkpoint="x.pth", path=str(tmp_path))


def test_bad_folders_and_label_files(tmp_path):
    folder = write_folder(tmp_path / "mixed", pixels(2))
    Image.fromarray(pixels(1, size=16)[0]).save(folder / "img_big.png")
    with pytest.raises(ValueError, match=r"images differ in size \(img_000.png is 8x8, img_big.png is 16x16\)"):
        SampleSource(folder)
    folder = write_folder(tmp_path / "ok", pixels(3))
    (tmp_path / "short.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="2 labels of shape .* for 3 images"):
        SampleSource(folder, labels=tmp_path / "short.txt")
    (tmp_path / "words.txt").write_text("1\ncat\n2\n")
    with pytest.raises(ValueError, match=r"words.txt, line 2: 'cat' is not an integer label"):
        SampleSource(folder, labels=tmp_path / "words.txt")
    with pytest.raises(ValueError, match="labels file .*none.txt does not exist"):
        SampleSource(folder, labels=tmp_path / "none.txt")
    (tmp_path / "neg.txt").write_text("1\n-1\n2\n")
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        SampleSource(folder, labels=tmp_path / "neg.txt")
