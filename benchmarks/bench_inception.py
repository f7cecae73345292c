"""Inception throughput: the project's TFInception against the TorchScript it replaces, in one process.

    python benchmarks/bench_inception.py                 # 64 CIFAR-sized images, batch 32
    python benchmarks/bench_inception.py --images 128 --batch 64

Every variant embeds the same uint8 32x32 images (resized to 299x299 as TF1 did, inside the
timed call); the table gives images/s, the speed-up over the TorchScript reference and the
largest deviation of the pool3 features from it, relative to the largest feature.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from bench_common import CoreWatch, describe_machine
from bigroc.metrics.features import InceptionNet, fid_network_path, tf_inception_input


def timed(run, x: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    run(x[:batch])  # warm-up: kernels picked, weights packed
    start = time.perf_counter()
    with torch.no_grad():
        out = torch.cat([run(chunk) for chunk in x.split(batch)])
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(describe_machine())
    x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        script = torch.jit.load(str(fid_network_path()), map_location="cpu").eval()
    variants = {
        "TorchScript default_1.pt (reference)": lambda u8: script(tf_inception_input(u8)),
        "TFInception float32 (BN folded, channels-last)": InceptionNet(batch_size=args.batch),
        "TFInception bf16 autocast": InceptionNet(batch_size=args.batch, precision="bf16"),
    }
    ref_seconds, ref_out = None, None
    print(f"{args.images} images 32x32 -> 299x299, batch {args.batch}")
    with CoreWatch() as watch:
        for name, run in variants.items():
            seconds, out = timed(run, x, args.batch)
            pool3 = out[:, :2048]
            if ref_out is None:
                ref_seconds, ref_out = seconds, pool3
            deviation = ((pool3 - ref_out).abs().max() / ref_out.abs().max()).item()
            print(f"{name:48s} {args.images / seconds:7.1f} img/s  {ref_seconds / seconds:5.2f}x  "
                  f"max |d pool3| / max |pool3| = {deviation:.1e}", flush=True)
    print(watch.verdict())


if __name__ == "__main__":
    main()
