"""Helpers for tests about files: hostile files made on the spot, and proof nothing changed."""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-1 of every file under ``folder`` (hidden ones and ``.hydra/`` included), by path."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class CodeRunner:
    """Unpickling this object runs ``touch marker``: what a crafted data file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_pickle(path: Path, marker: Path) -> Path:
    """A CIFAR-10-like batch whose unpickling would create ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": CodeRunner(marker)}, f,
                    protocol=2)
    return path


def npz_with_lying_header(path: Path, declared: tuple[int, ...], stored_images: int) -> Path:
    """An uncompressed npz whose ``arr_0`` header declares ``declared`` but holds fewer bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf, zf.open("arr_0.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": declared})
        f.write(np.zeros((stored_images, *declared[1:]), np.uint8).tobytes())
    return path


def compressed_npz_of_zeros(path: Path, shape: tuple[int, ...]) -> Path:
    """``np.savez_compressed``'s layout for a large all-zero ``arr_0``, written in slices."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("arr_0.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        row = np.zeros(shape[1:], np.uint8).tobytes()
        for _ in range(shape[0] // 1000):
            f.write(row * 1000)
    return path


def flip_middle_byte(path: Path) -> None:
    """Invert one byte half-way through the file (inside the pixels of a sample batch)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- hostile files for the readers of bigroc.safe_load, samples, images -------------------------

SYMLINK_ATTR = (0o120777 << 16)  # a zip member's external attributes: a Unix symbolic link


def rezip(src: Path, dst: Path, *, compress: int = zipfile.ZIP_STORED, symlink: str | None = None) -> Path:
    """A copy of the zip ``src`` with every member stored as ``compress``; ``symlink``: the
    name (suffix) of a member whose external attributes say it is a symbolic link."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for info in zin.infolist():
            out = zipfile.ZipInfo(info.filename, info.date_time)
            out.compress_type, out.create_system = compress, 3
            if symlink is not None and info.filename.endswith(symlink):
                out.external_attr = SYMLINK_ATTR
            zout.writestr(out, zin.read(info))
    return dst


def declare_member_size(path: Path, suffix: str, size: int) -> Path:
    """Make the zip's member ``*suffix`` declare ``size`` uncompressed bytes (< 4 GiB) in both
    its local and its central header; its data stays as it is."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
        start_dir = zf.start_dir
    data[info.header_offset + 22: info.header_offset + 26] = size.to_bytes(4, "little")
    at = start_dir
    while True:  # walk the central directory to the member's entry
        name_len, extra, comment = (int.from_bytes(data[at + o: at + o + 2], "little") for o in (28, 30, 32))
        if data[at + 46: at + 46 + name_len].decode() == info.filename:
            data[at + 24: at + 28] = size.to_bytes(4, "little")
            break
        at += 46 + name_len + extra + comment
    path.write_bytes(bytes(data))
    return path


def legacy_checkpoint(path: Path, numel: int, stored: int | None = None) -> Path:
    """A legacy (pre-zip) ``torch.save`` file of one float tensor whose pickle declares a
    storage of ``numel`` elements; the data after it holds ``stored`` elements (default: all)."""
    import collections
    import warnings

    import torch
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated
        storage_type = torch.FloatStorage
    marker = object()

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (marker, 0, (numel,), (1,), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", storage_type, "0", "cpu", numel, None) if obj is marker else None

    stored = numel if stored is None else stored
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info):
            pickle.dump(obj, f, protocol=2)
        Pickler(f, protocol=2).dump({"weight": Tensor()})
        pickle.dump(["0"], f, protocol=2)
        f.write(numel.to_bytes(8, "little") + np.arange(stored, dtype=np.float32).tobytes())
    return path


def npy_with_lying_header(path: Path, shape: tuple[int, ...], stored: int = 4) -> Path:
    """A ``.npy`` of int64 whose header declares ``shape`` but which holds ``stored`` values."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": shape})
        f.write(np.zeros(stored, np.int64).tobytes())
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a valid CRC."""
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def png_with_truncated_stream(path: Path, size: int = 32) -> Path:
    """An RGB PNG whose IDAT zlib stream stops half-way; every chunk's CRC is valid."""
    rows = np.random.default_rng(0).integers(0, 256, (size, size * 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    stream = zlib.compress(raw)
    ihdr = size.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", stream[: len(stream) // 2])
                     + png_chunk(b"IEND", b""))
    return path


def png_with_text_bomb(path: Path, unpacked: int = 16 << 20) -> Path:
    """A small PNG with a zTXt chunk that unpacks to ``unpacked`` bytes (Pillow allows 1 MB)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * unpacked, zip=True)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def checkpoint_bomb(path: Path, unpacked: int) -> Path:
    """A real ``torch.save`` file whose tensor data member is replaced by ``unpacked`` zero
    bytes, deflate-compressed (a few hundred KB on disk per GiB declared)."""
    import torch

    plain = path.with_name(path.name + ".plain")
    torch.save({"weight": torch.zeros(4)}, plain)
    block = bytes(1 << 20)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if not info.filename.endswith("data/0"):
                zout.writestr(info.filename, zin.read(info))
                continue
            with zout.open(info.filename, "w", force_zip64=True) as f:
                for _ in range(unpacked // len(block)):
                    f.write(block)
    plain.unlink()
    return path
