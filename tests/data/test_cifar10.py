"""CIFAR-10 reading, the DataModule, and every way the files can be wrong."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from bigroc.data import CIFAR10DataModule, read_cifar10
from bigroc.data import cifar10 as cifar_module


def write_batch(path, n=20, key_type=str, seed=0):
    rng = np.random.default_rng(seed)
    batch = {key_type("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             key_type("labels"): list(rng.integers(0, 10, n))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return batch


def fake_root(tmp_path, key_type=str):
    folder = tmp_path / "cifar-10-batches-py"
    batches = [write_batch(folder / name, key_type=key_type, seed=i)
               for i, name in enumerate([*cifar_module.SPLIT_FILES["train"], "test_batch"])]
    return tmp_path, batches


def test_real_copy_has_the_known_shapes_labels_and_fingerprint(cifar_root):
    x, y = read_cifar10(cifar_root, "train")
    assert x.shape == (50_000, 3, 32, 32) and x.dtype == torch.uint8
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # CIFAR-10's first training labels
    x_test, y_test = read_cifar10(cifar_root, "test")
    assert torch.bincount(y_test).tolist() == [1000] * 10
    assert cifar_module.data_fingerprint(x)[0] == "JPEG-rebuilt CIFAR-10"


@pytest.mark.parametrize("key_type", [str, str.encode], ids=["str-keys", "bytes-keys"])
def test_both_key_conventions_read_the_same(tmp_path, key_type):
    root, batches = fake_root(tmp_path, key_type)
    x, y = read_cifar10(root, "test")
    expected = batches[-1][key_type("data")].reshape(-1, 3, 32, 32)
    assert np.array_equal(x.numpy(), expected) and y.tolist() == list(batches[-1][key_type("labels")])


def test_missing_truncated_and_foreign_files_are_named(tmp_path):
    root, _ = fake_root(tmp_path)
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3 is missing.*data.download=true"):
        read_cifar10(root, "train")
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="test_batch is corrupted"):
        read_cifar10(root, "test")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4}, f)
    with pytest.raises(ValueError, match=r"test_batch holds data of shape \(4, 100\)"):
        read_cifar10(root, "test")


def test_download_without_internet_says_how_to_provide_the_files(tmp_path, monkeypatch):
    def offline(url, filename):
        raise OSError("Name or service not known")

    monkeypatch.setattr(cifar_module.urllib.request, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match="copy cifar-10-batches-py/"):
        CIFAR10DataModule(str(tmp_path), download=True).prepare_data()


def test_download_checks_the_md5(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar_module.urllib.request, "urlretrieve",
                        lambda url, filename: open(filename, "wb").write(b"not the archive"))
    with pytest.raises(RuntimeError, match="md5"):
        CIFAR10DataModule(str(tmp_path), download=True).prepare_data()
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_datamodule_splits_and_batches(cifar_root):
    dm = CIFAR10DataModule(str(cifar_root), batch_size=32, val_size=1000, train_size=640, test_size=200)
    dm.setup("fit")
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [640, 1000, 200]
    assert len(dm.train_dataloader()) == 20
    x, y = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape == (32, 3, 32, 32)
    with pytest.raises(ValueError, match="val_size"):
        bad = CIFAR10DataModule(str(cifar_root), val_size=50_000)
        bad.setup("fit")
