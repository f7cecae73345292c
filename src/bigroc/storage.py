"""Files that outlive a kill: atomic writes, uint8 sample batches, resumable chunks.

Samples on disk use the ADM / guided-diffusion layout: an ``.npz`` with ``arr_0`` uint8
(N, H, W, 3) and ``arr_1`` int64 labels, so other evaluators read what we write and we
read what they write.
"""

from __future__ import annotations

import errno
import math
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from bigroc.safe_load import regular_file, zip_symlink


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A kill at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:  # a full disk or a read-only folder: say which file
        if err.errno not in _NO_ROOM or (err.filename and str(err.filename) not in (str(tmp), str(path))):
            raise
        raise OSError(err.errno, f"cannot write {path}: {err.strerror}; free space or choose another "
                                 "directory (nothing already written was changed)") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] images -> uint8 (round to nearest), the form every image is scored in."""
    return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8)


def to_nhwc(x_u8: torch.Tensor) -> np.ndarray:
    """uint8 (N, 3, H, W) tensor -> uint8 (N, H, W, 3) array (ADM layout)."""
    return x_u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """``np.savez`` through :func:`atomic_write` (the name keeps its ``.npz`` suffix)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)

    return atomic_write(path, write)


def npz_header(path: str | os.PathLike, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of member ``key`` of an ``.npz`` without reading its data.

    Refused (ValueError): a path that is not a regular file, a symbolic-link member."""
    with zipfile.ZipFile(regular_file(path, ".npz file")) as zf, zf.open(_member(zf, path, key)) as f:
        shape, _, dtype = read_npy_header(f)
    return shape, dtype


def _member(zf: zipfile.ZipFile, path: str | os.PathLike, key: str) -> zipfile.ZipInfo:
    """The zip entry of array ``key``; refused when any member is a symbolic link."""
    link = zip_symlink(zf)
    if link is not None:
        raise ValueError(f"{path}: member {link} is a symbolic link, which numpy never writes; write the file "
                         "again with np.savez")
    return zf.getinfo(f"{key}.npy")


def read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a ``.npy`` stream's header, the stream left at its data."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    return tuple(shape), fortran, np.dtype(dtype)


# A compressed member is decompressed in memory: past this size it must be stored
# uncompressed (np.savez), which is memory-mapped instead.
MAX_DECOMPRESSED_BYTES = 2**29
_CRC_BLOCK = 2**24


def read_npz_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """Member ``key`` of an ``.npz``, memory-mapped where it is stored uncompressed.

    ``np.savez`` (and ADM's sample and reference batches) store members uncompressed, so a
    50 000-image batch is read from disk as it is indexed instead of filling memory at
    once; its CRC is checked once, streaming, so a damaged byte is not read silently.
    Compressed members (``np.savez_compressed``) are read whole, up to
    ``MAX_DECOMPRESSED_BYTES``. Before any pixel is read, the size the array's header
    declares must match what the zip stores: a header that lies is refused, as are a path
    that is not a regular file (a FIFO would block) and symbolic-link members.
    """
    with zipfile.ZipFile(regular_file(path, ".npz file")) as zf:
        info = _member(zf, path, key)
        with zf.open(info) as f:
            shape, fortran, dtype = read_npy_header(f)
            header_len = f.tell()
        if dtype.hasobject:
            raise ValueError(f"{path}: {key} holds Python objects, which are not read; store numbers only")
        if any(int(d) < 0 for d in shape):
            raise ValueError(f"{path}: {key} declares the impossible shape {shape}; write it again with np.savez")
        declared = math.prod(int(d) for d in shape) * dtype.itemsize  # Python ints: no overflow
        if header_len + declared != info.file_size:
            raise ValueError(f"{path}: {key} declares shape {shape} ({declared} bytes) but the file stores "
                             f"{info.file_size - header_len} bytes for it: the file is damaged or was not "
                             "written by numpy; write it again with np.savez")
        if info.compress_type != zipfile.ZIP_STORED:
            if declared > MAX_DECOMPRESSED_BYTES:
                raise ValueError(f"{path}: {key} is compressed and {declared / 2**30:.1f} GiB when unpacked; "
                                 "store it uncompressed (np.savez, not savez_compressed) so it is read as used")
            with zf.open(info) as f:  # zipfile checks the CRC at the end of the member
                return np.lib.format.read_array(f, allow_pickle=False)
    data_start = _member_data_offset(path, info)
    if data_start + info.file_size > os.path.getsize(path):
        raise ValueError(f"{path} is truncated: {key} needs {info.file_size} bytes from offset {data_start}")
    _check_crc(path, data_start, info)
    if declared == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=data_start + header_len, shape=shape,
                     order="F" if fortran else "C")


def _member_data_offset(path: str | os.PathLike, info: zipfile.ZipInfo) -> int:
    with open(path, "rb") as raw:  # the local file header: 30 bytes, then name and extra field
        raw.seek(info.header_offset)
        local = raw.read(30)
    name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def _check_crc(path: str | os.PathLike, start: int, info: zipfile.ZipInfo) -> None:
    import zlib

    crc, left = 0, info.file_size
    with open(path, "rb") as raw:
        raw.seek(start)
        while left:
            block = raw.read(min(left, _CRC_BLOCK))
            if not block:
                break
            crc, left = zlib.crc32(block, crc), left - len(block)
    if crc != info.CRC:
        raise ValueError(f"{path}: {info.filename} fails its CRC check (the file is damaged); copy or write it again")


class ChunkStore:
    """One ``.npz`` per finished batch, so a killed run restarts where it stopped.

    A chunk holds the batch's global ``indices``, ``base`` and ``boosted`` uint8 NCHW
    images, the ``labels`` used and the ``digest`` of the settings that made it
    (:mod:`bigroc.run_state`). It is named by its first index and size; a chunk of other
    indices or another digest is never read back (and is rewritten).
    """

    def __init__(self, root: str | os.PathLike, digest: str = "") -> None:
        self.root, self.digest = Path(root), str(digest)

    def _path(self, indices: torch.Tensor) -> Path:
        return self.root / f"{int(indices[0]):09d}_{len(indices)}.npz"

    @staticmethod
    def digest_of(path: str | os.PathLike) -> str | None:
        """The settings digest a chunk carries: "" if it has none (an earlier bigroc wrote
        it), None if it cannot be read (a half-written file: recomputed, never trusted)."""
        try:
            with np.load(path) as f:
                return str(f["digest"]) if "digest" in f.files else ""
        except (OSError, ValueError, zipfile.BadZipFile):
            return None

    def load(self, indices: torch.Tensor) -> dict[str, torch.Tensor] | None:
        path = self._path(indices)
        if not path.exists():
            return None
        try:
            with np.load(path) as f:
                if str(f["digest"]) != self.digest:
                    return None
                chunk = {k: torch.from_numpy(f[k]) for k in ("indices", "base", "boosted", "labels")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # unreadable: recompute it
        if not torch.equal(chunk["indices"], indices.cpu()):
            return None
        return chunk

    def save(self, indices, base, boosted, labels) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        save_npz(self._path(indices), indices=indices.cpu().numpy(), base=base.cpu().numpy(),
                 boosted=boosted.cpu().numpy(), labels=labels.cpu().numpy(), digest=np.array(self.digest))

    def chunks(self) -> list[Path]:
        """This run's chunks on disk (its digest), in index order."""
        return [p for p in sorted(self.root.glob("*.npz")) if self.digest_of(p) == self.digest]


def write_samples(path: Path, total: int, parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> Path:
    """Stream (images NHWC uint8, labels) parts into one ADM ``.npz`` of ``total`` images.

    The arrays are written piece by piece into the zip, so memory stays at one part.
    """
    def write(tmp: Path) -> None:
        labels = []
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            header_done = False
            with zf.open("arr_0.npy", "w", force_zip64=True) as f:
                count = 0
                for images, y in parts:
                    if not header_done:
                        shape = (total, *images.shape[1:])
                        np.lib.format.write_array_header_1_0(
                            f, {"descr": "|u1", "fortran_order": False, "shape": shape})
                        header_done = True
                    f.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
                    labels.append(np.asarray(y, dtype=np.int64))
                    count += len(images)
                if count != total:
                    raise ValueError(f"wrote {count} images to {path}, expected {total}")
            with zf.open("arr_1.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.concatenate(labels), allow_pickle=False)

    return atomic_write(path, write)
