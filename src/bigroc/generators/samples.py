"""Images made anywhere, boosted like a generator's: an ``.npz`` or a folder of images.

- ``.npz`` in the ADM / guided-diffusion layout: ``arr_0`` uint8 (N, H, W, 3) RGB and,
  optionally, integer labels (N,) under ``labels_key`` (``arr_1``). ``arr_0`` is read
  once and kept as uint8; images become float only per batch.
- a folder of ``.png``/``.jpg``/``.jpeg`` files, taken in name order, converted to RGB by
  :func:`bigroc.images.read_rgb8`; each is decoded once when the source is made (so a
  damaged file is named before the run writes anything), then again per batch.

An explicit ``labels`` file (``.npy``, or text with one integer per line) gives or
replaces the labels. With labels the source is conditional. ``generate`` ignores the
seed: image ``i`` is the stored image ``i``.

Every file is checked to be a regular file before it is opened (a FIFO would block), and
what a file declares (an image's size, a ``.npy``'s shape) is checked before it is read.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from bigroc.generators.base import ImageSource, as_indices
from bigroc.images import MAX_SIDE, check_side, read_rgb8  # noqa: F401 (MAX_SIDE: re-exported)
from bigroc.safe_load import regular_file
from bigroc.storage import npz_header, read_npy_header, read_npz_array

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_FIX = "write arr_0 as uint8 (N, H, W, 3) RGB, the ADM sample layout"
LABELS_FIX = "give a .npy of integers or a text file with one integer per line (generator.labels)"
_INTEGER = re.compile(rb"\s*[+-]?[0-9]+\s*")


def read_npz(path: Path, labels_key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(``arr_0`` uint8 NHWC, labels or None) of an ADM-style sample file, checked.

    ``arr_0`` is memory-mapped where the file stores it uncompressed (``np.savez``, ADM's
    batches), so a 50 000-image ImageNet batch is read as it is used. A path that is not a
    regular file (a FIFO would block the read) is refused by name.
    """
    regular_file(path, "samples file (generator.path: an .npz or a folder of images)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}); generator.path takes an "
                         f".npz (ADM layout) or a folder of PNG/JPG images") from None
    if "arr_0" not in keys:
        raise ValueError(f"{path} has no arr_0 (keys: {', '.join(keys)}); {NPZ_FIX}")
    shape, dtype = npz_header(path, "arr_0")
    if dtype != np.uint8:
        raise ValueError(f"{path}: arr_0 is {dtype}, not uint8; {NPZ_FIX} (quantise: round(x * 255))")
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"{path}: arr_0 has shape {shape}, not (N, H, W, 3); {NPZ_FIX} (NHWC, not NCHW)")
    check_side(shape[2], shape[1], str(path))
    images = read_npz_array(path, "arr_0")
    labels = np.asarray(read_npz_array(path, labels_key)) if labels_key and labels_key in keys else None
    return images, labels


def image_files(folder: Path) -> tuple[list[Path], tuple[int, int]]:
    """The folder's image files in name order, and their common (width, height).

    Every file is decoded whole now (:func:`bigroc.images.read_rgb8`: a FIFO, a device, an
    oversized, damaged or float image is refused by name) so that nothing fails mid-run.
    """
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not files:
        raise ValueError(f"{folder} holds no .png/.jpg/.jpeg images; generator.path takes such a folder or an .npz")
    first: tuple[Path, tuple[int, int]] | None = None
    for f in files:
        height, width = read_rgb8(f).shape[:2]
        if first is None:
            first = (f, (width, height))
        elif (width, height) != first[1]:
            (f0, (w0, h0)) = first
            raise ValueError(f"{folder}: images differ in size ({f0.name} is {w0}x{h0}, {f.name} is "
                             f"{width}x{height}); resize them to one size first")
    return files, first[1]


def _npy_labels(path: Path) -> np.ndarray:
    """The array of a ``.npy`` labels file, after checking that its header declares no more
    bytes than the file holds (numpy would allocate the declared size first)."""
    with open(path, "rb") as f:
        try:
            shape, _, dtype = read_npy_header(f)
        except (ValueError, OSError, EOFError, SyntaxError) as err:
            raise ValueError(f"{path}: not a readable .npy file ({str(err)[:120]}); {LABELS_FIX}") from None
        data_bytes = path.stat().st_size - f.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects (dtype object), which are not read; {LABELS_FIX}")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize  # Python ints: no overflow
    if declared != data_bytes:
        raise ValueError(f"{path}: its header declares shape {tuple(shape)} ({declared} bytes) but the file holds "
                         f"{data_bytes} bytes of data: it is damaged or crafted; {LABELS_FIX}")
    return np.load(path, allow_pickle=False)


def _text_labels(path: Path, num_classes: int) -> np.ndarray:
    """One integer in [0, num_classes) per non-blank line of a UTF-8/ASCII text file."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}, line {line}: bytes that are not UTF-8 text; save the labels as UTF-8 (or ASCII) "
                         "integers, one per line") from None
    values = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        shown = line.strip().decode()[:40]
        if not _INTEGER.fullmatch(line):
            raise ValueError(f"{path}, line {n}: {shown!r} is not an integer label; {LABELS_FIX}")
        value = int(line) if len(line) < 400 else num_classes  # a 400-digit number is out of range anyway
        if not 0 <= value < num_classes:
            raise ValueError(f"{path}, line {n}: label {shown} is outside [0, {num_classes}), the valid class "
                             f"indices; fix the label, or check generator.num_classes={num_classes}")
        values.append(value)
    return np.asarray(values, dtype=np.int64)


def read_labels(path: Path, num_classes: int) -> np.ndarray:
    """Labels from ``.npy`` or a text file with one integer per line (in [0, num_classes)).

    Refused by name: a missing or non-regular file, an ``.npz`` archive, a ``.npy`` whose
    header lies about its size or that holds objects, text that is not UTF-8, and a text
    label that is not an integer in range (the line is named).
    """
    if not path.exists():
        raise ValueError(f"labels file {path} does not exist (generator.labels)")
    path = regular_file(path, "labels file (generator.labels)")
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"PK"):
        raise ValueError(f"{path}: an npz archive (a zip of arrays), not a single array; pass a .npy (np.save) "
                         "or a text file with one integer per line")
    if head == b"\x93NUMPY" or path.suffix == ".npy":
        return _npy_labels(path)
    return _text_labels(path, num_classes)


def check_labels(labels: np.ndarray, count: int, num_classes: int, where: str) -> np.ndarray:
    """Labels as int64 (N,), after checking length, dtype and range [0, num_classes)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: labels are {labels.dtype}, not integers; give integer class indices in "
                         f"[0, {num_classes})")
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.ndim != 1 or len(labels) != count:
        raise ValueError(f"{where}: {labels.shape[0] if labels.ndim else 0} labels of shape {labels.shape} for "
                         f"{count} images; give one integer label per image")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels span [{labels.min()}, {labels.max()}], outside [0, {num_classes}); "
                         f"check generator.num_classes={num_classes}")
    return labels.astype(np.int64)


class SampleSource(ImageSource):
    """Stored images (and labels) behind the :class:`ImageSource` interface.

    Args:
        path: an ``.npz`` (``arr_0`` uint8 NHWC RGB) or a folder of PNG/JPG files.
        labels: optional labels file (``.npy`` or one integer per line); wins over the npz's.
        num_classes: classes of the dataset; labels must lie in [0, num_classes).
        labels_key: the npz key holding labels (``arr_1``); None ignores the npz's labels.
    """

    def __init__(self, path: str | os.PathLike, labels: str | os.PathLike | None = None, num_classes: int = 10,
                 labels_key: str | None = "arr_1") -> None:
        super().__init__()
        self.path, self.num_classes = Path(path).expanduser(), int(num_classes)
        self._array: np.ndarray | None = None
        self._files: list[Path] = []
        if not self.path.exists():
            raise ValueError(f"samples path {self.path} does not exist; set generator.path to an .npz (arr_0 uint8 "
                             "N,H,W,3) or a folder of PNG/JPG images")
        if self.path.is_dir():
            self._files, (width, height) = image_files(self.path)
            stored, count = None, len(self._files)
        else:
            self._array, stored = read_npz(self.path, labels_key)
            count, height, width = self._array.shape[:3]
            if count == 0:
                raise ValueError(f"{self.path}: arr_0 holds no images")
        self.count, self.image_size, self._shape = int(count), int(height), (int(height), int(width))
        if labels is not None:
            stored, where = read_labels(Path(labels).expanduser(), self.num_classes), str(labels)
        else:
            where = f"{self.path} ({labels_key})"
        self._labels = None if stored is None else check_labels(stored, self.count, self.num_classes, where)
        self.conditional = self._labels is not None

    def __len__(self) -> int:
        return self.count

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._shape  # stored images need not be square

    def _pixels(self, idx: list[int]) -> np.ndarray:
        if self._array is not None:
            return self._array[idx]
        return np.stack([read_rgb8(self._files[i]) for i in idx])

    @torch.no_grad()
    def generate(self, indices: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stored images ``indices`` (``seed`` is ignored), float NCHW in [0, 1]."""
        idx = as_indices(indices)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.count):
            bad = int(idx.max()) if int(idx.max()) >= self.count else int(idx.min())
            raise IndexError(f"sample index {bad} is out of range: {self.path} holds {self.count} images "
                             f"(ask for at most {self.count} samples)")
        pixels = torch.from_numpy(np.ascontiguousarray(self._pixels(idx.tolist())))
        x = pixels.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        y = None if self._labels is None else torch.from_numpy(self._labels[idx.numpy()]).to(self.device)
        return x, y


def build_samples(name: str, checkpoint: str | None = None, random_init: bool = False, *,
                  path: str | None = None, labels: str | None = None, num_classes: int = 10,
                  labels_key: str | None = "arr_1") -> SampleSource:
    """A :class:`SampleSource`; ``samples`` reads ``generator.path``, never a checkpoint."""
    if checkpoint is not None or random_init:
        raise ValueError("generator 'samples' reads generator.path (an .npz or an image folder); it takes no "
                         "generator.checkpoint or generator.random_init")
    if path is None:
        raise ValueError("generator 'samples' needs generator.path=PATH (an .npz or a folder of PNG/JPG images)")
    return SampleSource(path, labels=labels, num_classes=num_classes, labels_key=labels_key)
