"""Images made anywhere, boosted like a generator's: an ``.npz`` or a folder of images.

- ``.npz`` in the ADM / guided-diffusion layout: ``arr_0`` uint8 (N, H, W, 3) RGB and,
  optionally, integer labels (N,) under ``labels_key`` (``arr_1``). ``arr_0`` is read
  once and kept as uint8; images become float only per batch.
- a folder of ``.png``/``.jpg``/``.jpeg`` files, taken in name order, converted to RGB by
  Pillow and read per batch.

An explicit ``labels`` file (``.npy``, or text with one integer per line) gives or
replaces the labels. With labels the source is conditional. ``generate`` ignores the
seed: image ``i`` is the stored image ``i``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from bigroc.generators.base import ImageSource, as_indices
from bigroc.storage import npz_header, read_npz_array

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_FIX = "write arr_0 as uint8 (N, H, W, 3) RGB, the ADM sample layout"
# Larger images are refused before a pixel is decoded (a 16 KB PNG can declare 10^8 pixels).
MAX_SIDE = 4096
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I")


def read_npz(path: Path, labels_key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(``arr_0`` uint8 NHWC, labels or None) of an ADM-style sample file, checked.

    ``arr_0`` is memory-mapped where the file stores it uncompressed (``np.savez``, ADM's
    batches), so a 50 000-image ImageNet batch is read as it is used.
    """
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


def check_side(width: int, height: int, where: str) -> None:
    if max(width, height) > MAX_SIDE:
        raise ValueError(f"{where}: images of {width}x{height} pixels are larger than bigroc reads "
                         f"({MAX_SIDE} per side); resize them to the classifier's input size first")


def _damaged(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{path} cannot be decoded ({type(err).__name__}: {err}): the file is damaged or incomplete; "
                      "export it again or remove it from the folder")


def image_files(folder: Path) -> tuple[list[Path], tuple[int, int]]:
    """The folder's image files in name order, and their common (width, height).

    Every file's header is read and checked (size, and a PNG's chunk checksums) before
    any pixel is decoded, so a damaged file is named now rather than mid-run.
    """
    from PIL import Image

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not files:
        raise ValueError(f"{folder} holds no .png/.jpg/.jpeg images; generator.path takes such a folder or an .npz")
    sizes = {}
    for f in files:
        try:
            with Image.open(f) as im:
                check_side(*im.size, str(f))
                sizes.setdefault(im.size, f)
                im.verify()
        except Image.DecompressionBombError:  # so many pixels that Pillow refuses to open it
            raise ValueError(f"{f}: the image is larger than bigroc reads ({MAX_SIDE} per side); resize it to the "
                             "classifier's input size first") from None
        except (OSError, SyntaxError) as err:  # Pillow's errors of bad files
            raise _damaged(f, err) from None
        if len(sizes) > 1:
            (size0, f0), (size1, f1) = sizes.items()
            raise ValueError(f"{folder}: images differ in size ({f0.name} is {size0[0]}x{size0[1]}, {f1.name} is "
                             f"{size1[0]}x{size1[1]}); resize them to one size first")
    return files, next(iter(sizes))


def read_labels(path: Path) -> np.ndarray:
    """Labels from ``.npy`` or a text file with one integer per line."""
    if not path.is_file():
        raise ValueError(f"labels file {path} does not exist (generator.labels)")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    values = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                values.append(int(line.strip()))
            except ValueError:
                raise ValueError(f"{path}, line {n}: {line.strip()!r} is not an integer label") from None
    return np.asarray(values, dtype=np.int64)


def check_labels(labels: np.ndarray, count: int, num_classes: int, where: str) -> np.ndarray:
    """Labels as int64 (N,), after checking length, dtype and range [0, num_classes)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: labels are {labels.dtype}, not integers")
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.ndim != 1 or len(labels) != count:
        raise ValueError(f"{where}: {labels.shape[0] if labels.ndim else 0} labels of shape {labels.shape} for "
                         f"{count} images; give one integer label per image")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels span [{labels.min()}, {labels.max()}], outside [0, {num_classes}); "
                         f"check generator.num_classes={num_classes}")
    return labels.astype(np.int64)


def read_rgb8(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB; 16-bit greyscale is scaled, not clipped."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode in SIXTEEN_BIT_MODES:
                grey = np.asarray(im).astype(np.int64)
                if grey.min() < 0 or grey.max() > 65535:
                    raise ValueError(f"{path}: {im.mode} pixels outside 0..65535; save it as 8- or 16-bit PNG")
                return np.repeat(np.rint(grey / 257.0).astype(np.uint8)[..., None], 3, axis=2)
            if im.mode == "F":
                raise ValueError(f"{path} holds floating-point pixels (mode F); save it as an 8- or 16-bit PNG")
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError) as err:
        raise _damaged(path, err) from None


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
            stored, where = read_labels(Path(labels).expanduser()), str(labels)
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
