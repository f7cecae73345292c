"""What a PNG folder's run identity costs: hashing every image's bytes, against stat-ing them.

    python benchmarks/bench_identity.py                  # 50 000 CIFAR-10 train images as PNGs
    python benchmarks/bench_identity.py --images 5000

Writes the PNGs once to a temporary folder, then times, cold (first read) and warm (the
process's memo): the folder digest ``run_boost.py`` keys a run on (SHA-256 over every image's
name and bytes), the (size, mtime_ns, inode) stat of every file it is memoised by, and the
full decode the sample reader does before anything is written.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench_common import CoreWatch, describe_machine
from bigroc.data import read_cifar10
from bigroc.generators.samples import image_files
from bigroc.run_state import _FOLDER_DIGESTS, folder_digest


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--data-root", default="data", help="CIFAR-10 (<root>/cifar-10-batches-py/)")
    args = parser.parse_args()
    print(describe_machine())
    x, _ = read_cifar10(args.data_root, "train")
    x = x.permute(0, 2, 3, 1).numpy()  # NHWC uint8
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, image in enumerate(x[: args.images]):
            Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{i:06d}.png")
        size = sum(p.stat().st_size for p in folder.iterdir())
        os.sync()
        with CoreWatch() as watch:
            rows = [
                ("stat every file (size, mtime_ns, inode)", timed(lambda: [p.stat() for p in folder.iterdir()])),
                ("digest, first time (SHA-256 of every byte)", timed(lambda: folder_digest(folder))),
                ("digest, again in the same process (memo)", timed(lambda: folder_digest(folder))),
                ("decode every image (checked before writing)", timed(lambda: image_files(folder))),
            ]
        _FOLDER_DIGESTS.clear()
    print(f"{args.images} CIFAR-10 PNGs, {size / 2**20:.1f} MiB")
    for name, seconds in rows:
        print(f"  {name:48s} {seconds:7.2f} s  {args.images / seconds:10.0f} images/s")
    print(watch.verdict())


if __name__ == "__main__":
    main()
