"""CIFAR-10 from its python-pickle layout (``cifar-10-batches-py/``), and its DataModule.

The files are read whole into uint8 tensors (180 MB); batches move to the training device
as uint8 and become float [0, 1] there, where the training augmentation (random crop with
4-pixel padding, horizontal flip) runs on the whole batch, seeded by the training step.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from bigroc.data.augment import random_crop_flip
from bigroc.data.loader import ResumableLoader
from bigroc.safe_load import RefusedPickle, regular_file, restricted_pickle_load

FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
# sha1 of the train split as uint8 NHWC bytes -> what it is (see data_fingerprint).
KNOWN_TRAIN_SHA1 = {"a474d85ad13675d34f8c66c8978abf0e40bfc741": "JPEG-rebuilt CIFAR-10"}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# What the real batches (and make_cifar10.py's) pickle beside dicts, lists, bytes and ints:
# numpy arrays, scalars (labels written as numpy ints) and dtypes, under numpy 1's and 2's
# module names; and codecs.encode, with which Python 3 writes bytes in pickle protocol 2.
PICKLE_GLOBALS = tuple((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                       for name in ("_reconstruct", "scalar")) + (
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"))  # pickle protocol 5
HOW_TO_PROVIDE = (
    f"put the python version of CIFAR-10 ({FOLDER}/ with data_batch_1..5 and test_batch) under "
    "data.root, or set data.download=true where the internet is reachable"
)
# The offline copy's maker, where the data folder sits beside the checkout (the README's layout).
OFFLINE_MAKER = Path("..") / "shared" / "data" / "cifar10" / "make_cifar10.py"


def how_to_provide(root: str | Path) -> str:
    """What to do about missing files: the offline maker's command where it is at hand."""
    if OFFLINE_MAKER.is_file():
        return f"make it with `python {OFFLINE_MAKER.as_posix()} {root}`, or {HOW_TO_PROVIDE}"
    return HOW_TO_PROVIDE


def _corrupted(path: Path, err: Exception) -> ValueError:
    return ValueError(f"CIFAR-10 file {path} is corrupted or not a CIFAR-10 batch ({type(err).__name__}: {err}); "
                      f"replace it ({HOW_TO_PROVIDE})")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch -> (uint8 (N, 3, 32, 32), int64 (N,)); both key conventions."""
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 file {path} is missing; {how_to_provide(path.parent.parent)}")
    regular_file(path, "CIFAR-10 batch file")  # a FIFO would block the open below
    try:
        with open(path, "rb") as f:
            batch = restricted_pickle_load(f, PICKLE_GLOBALS, what=f"CIFAR-10 file {path}", encoding="bytes")
    except RefusedPickle as err:
        raise ValueError(f"{err}; replace it ({HOW_TO_PROVIDE})") from None
    except Exception as err:  # truncated pickle, not a pickle
        raise _corrupted(path, err) from None
    try:
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data, labels = batch["data"], np.asarray(batch["labels"], dtype=np.int64)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
            raise TypeError(f"its data is {type(data).__name__} {getattr(data, 'dtype', '')}, not a uint8 array")
    except Exception as err:  # wrong keys, not a dict, another dtype, ...
        raise _corrupted(path, err) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(
            f"CIFAR-10 file {path} holds data of shape {data.shape} with {len(labels)} labels, "
            "expected (N, 3072) uint8 and N labels; replace it"
        )
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``train`` (50 000) or ``test`` (10 000) split as uint8 (N, 3, 32, 32) and labels."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    parts = [_read_batch(Path(root) / FOLDER / name) for name in SPLIT_FILES[split]]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"CIFAR-10 {split} labels under {root} lie outside 0..9; the files are corrupted")
    return torch.from_numpy(x), torch.from_numpy(y)


def data_fingerprint(x_train: torch.Tensor) -> tuple[str, str]:
    """(name, sha1) of a train split, so exported results say which pixels they saw."""
    digest = hashlib.sha1(x_train.permute(0, 2, 3, 1).contiguous().numpy().tobytes()).hexdigest()
    return KNOWN_TRAIN_SHA1.get(digest, "CIFAR-10"), digest


def download_cifar10(root: str | Path) -> None:
    """Fetch the official archive, check its md5 and unpack it under ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        try:
            urllib.request.urlretrieve(URL, archive)
        except OSError as err:
            raise RuntimeError(
                f"could not download CIFAR-10 from {URL} ({err}); without internet access, "
                f"copy {FOLDER}/ under {root} yourself"
            ) from None
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if digest != MD5:
            raise RuntimeError(f"downloaded CIFAR-10 archive has md5 {digest}, expected {MD5}; try again")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (Path(tmp) / FOLDER).rename(root / FOLDER)


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x.float().div_(255)


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 for robust training and evaluation.

    Args:
        root: folder holding ``cifar-10-batches-py/``.
        batch_size: training batch size (per process under DDP).
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        val_size: hold out this many training images (seeded) for validation; 0 validates
            on the test split.
        train_size: train on the first ``train_size`` remaining training images (default: all).
        test_size: use the first ``test_size`` test images (default: all 10 000).
        download: fetch the official archive when the files are missing.
        augment: random crop (4-pixel padding) and horizontal flip for training batches.
        num_workers, pin_memory: passed to the loaders.
        seed: data order, validation split and augmentation draws.
    """

    def __init__(
        self,
        root: str = "data",
        *,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int = 0,
        train_size: int | None = None,
        test_size: int | None = None,
        download: bool = False,
        augment: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.batch_size, self.eval_batch_size = Path(root), batch_size, eval_batch_size or batch_size
        self.val_size, self.train_size, self.test_size = val_size, train_size, test_size
        self.download, self.augment = download, augment
        self.num_workers, self.pin_memory, self.seed = num_workers, pin_memory, seed
        self.splits: dict[str, TensorDataset] = {}
        self.fingerprint: tuple[str, str] | None = None

    def prepare_data(self) -> None:
        if self.download and not (self.root / FOLDER / "test_batch").exists():
            download_cifar10(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x, y = read_cifar10(self.root, "train")
        x_test, y_test = read_cifar10(self.root, "test")
        if not 0 <= self.val_size < len(x):
            raise ValueError(f"data.val_size must lie in [0, {len(x)}), got {self.val_size}")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        held, kept = order[: self.val_size], order[self.val_size :][: self.train_size]
        self.fingerprint = data_fingerprint(x)
        self.splits["train"] = TensorDataset(x[kept], y[kept])
        self.splits["test"] = TensorDataset(x_test[: self.test_size], y_test[: self.test_size])
        self.splits["val"] = TensorDataset(x[held], y[held]) if self.val_size else self.splits["test"]

    def train_dataloader(self) -> ResumableLoader:
        return ResumableLoader(
            self.splits["train"], batch_size=self.batch_size, seed=self.seed,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.splits[split], batch_size=self.eval_batch_size, shuffle=False,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        x = to_unit_float(x)
        trainer = self.trainer
        if self.augment and trainer is not None and trainer.training:
            # Seeded by the step, so a resumed run draws what the uninterrupted one drew.
            g = torch.Generator(device=x.device).manual_seed(self.seed * 100_003 + trainer.global_step)
            x = random_crop_flip(x, padding=4, generator=g)
        return x, y
