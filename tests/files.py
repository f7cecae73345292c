"""Helpers for tests about files: hostile files made on the spot, and proof nothing changed."""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
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
