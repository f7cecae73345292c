"""What bf16 changes in the scores: FID and KID of real CIFAR-10 images, Inception in float32
against Inception under bf16 autocast, in one process.

    python benchmarks/bench_precision.py --data-root data            # 2500 train vs 2500 test images
    python benchmarks/bench_precision.py --data-root data --images 500

Both precisions embed the same uint8 images; the table gives each precision's FID and KID
between the two sets, the bf16 - float32 difference, and the largest relative deviation of
the pool3 features.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_common import CoreWatch, describe_machine
from bigroc.data import read_cifar10
from bigroc.metrics import InceptionFeatures, ReferenceStats
from bigroc.metrics.maths import frechet_distance, kid, moments_from_sums


def scores(real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    ref = ReferenceStats.from_features(real)
    f64 = fake.double()
    mu, sigma = moments_from_sums(f64.sum(0), f64.T @ f64, len(fake))
    fid = float(frechet_distance(ref.mu, ref.sigma, mu, sigma, sigma1_factor=ref.sigma_factor()))
    kid_mean, _ = kid(real, fake, subsets=100, subset_size=min(1000, len(fake)))
    return fid, float(kid_mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--images", type=int, default=2500)
    args = parser.parse_args()
    print(describe_machine())
    a = read_cifar10(args.data_root, "train")[0][:args.images]
    b = read_cifar10(args.data_root, "test")[0][:args.images]
    rows = {}
    with CoreWatch() as watch:
        for precision in ("32", "bf16"):
            net = InceptionFeatures(batch_size=100, precision=precision)
            start = time.perf_counter()
            fa, fb = net(a), net(b)
            seconds = time.perf_counter() - start
            rows[precision] = (fa, fb, *scores(fa, fb), 2 * args.images / seconds)
    (fa32, fb32, fid32, kid32, rate32), (fa16, fb16, fid16, kid16, rate16) = rows["32"], rows["bf16"]
    deviation = max(((x - y).abs().max() / y.abs().max()).item() for x, y in ((fa16, fa32), (fb16, fb32)))
    print(f"{args.images} CIFAR-10 train vs {args.images} test images (JPEG-rebuilt CIFAR-10)")
    print(f"float32 Inception:     FID {fid32:8.4f}  KID {kid32:.6f}  ({rate32:.1f} img/s)")
    print(f"bf16 autocast:         FID {fid16:8.4f}  KID {kid16:.6f}  ({rate16:.1f} img/s)")
    print(f"bf16 - float32:        FID {fid16 - fid32:+8.4f} ({(fid16 - fid32) / fid32:+.2%})  "
          f"KID {kid16 - kid32:+.6f}; features: max relative deviation {deviation:.1e}")
    print(watch.verdict())


if __name__ == "__main__":
    main()
