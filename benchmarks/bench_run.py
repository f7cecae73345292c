"""End-to-end throughput of a boosting run (generate + boost + score), and its memory.

    python benchmarks/bench_run.py                       # 128 images, batch 64, 30 steps
    python benchmarks/bench_run.py --samples 64 --steps 10 --memory-at 64 256

Both variants make the same images with the same generator (torch-mimicry's SNGAN
architecture at its published width, random weights: speed does not depend on them) and
boost them with the shipped robust classifier, then score base and boosted images with
the FID Inception network:

- reference: the loop one writes with torchmetrics directly: generate, ``bigroc()`` on the
  plain classifier, then ``FrechetInceptionDistance`` and ``KernelInceptionDistance``, each
  given the Inception network as ``feature=`` (so each runs it on every image);
- bigroc: ``bigroc.lit.Boost`` under a Lightning Trainer, as ``run_boost.py`` runs it
  (BN-folded channels-last classifier, Inception once per image shared by FID, KID and
  precision/recall, chunks streamed to disk).

Memory: peak resident set of a fresh process running the bigroc variant at each sample
count of ``--memory-at`` (it should stay flat: scores keep running sums and at most
``max_features`` features, samples go to disk).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_common import CoreWatch, describe_machine, quiet_output
from bigroc.attacks import AttackSpec

REF_SAMPLES = 64  # reference images for the scores (statistics are cached after the first run)


def setup(steps: int):
    from bigroc.generators import build_generator
    from bigroc.models import load_classifier
    from bigroc.models.checkpoints import shipped_classifier

    torch.manual_seed(0)
    source = build_generator("sngan", random_init=True)
    return source, load_classifier(shipped_classifier()), AttackSpec(eps=1.0, steps=steps)


def run_reference(source, classifier, attack, n: int, batch: int, real: torch.Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from bigroc.boost import bigroc
    from bigroc.storage import quantize
    from bigroc.metrics import InceptionFeatures

    net = InceptionFeatures()
    start = time.perf_counter()
    scores = {s: (FrechetInceptionDistance(feature=net), KernelInceptionDistance(feature=net, subset_size=8))
              for s in ("base", "boosted")}
    for fid, kid in scores.values():
        fid.update(real, real=True)
        kid.update(real, real=True)
    for idx in torch.arange(n).split(batch):
        x, _ = source.generate(idx, 0)
        x_b, _ = bigroc(classifier.eval(), x, eps=attack.eps, steps=attack.steps)
        for stage, images in (("base", x), ("boosted", x_b)):
            for metric in scores[stage]:
                metric.update(quantize(images), real=False)
    for fid, kid in scores.values():
        fid.compute(), kid.compute()
    return time.perf_counter() - start


def run_bigroc(source, classifier, attack, n: int, batch: int, cache: Path, data_root: str,
               precision: str = "32") -> float:
    """Seconds for n images on run_boost.py's path; ``precision`` ("32" or "bf16") is the
    attack's (Lightning's bf16-mixed) and the Inception network's."""
    import lightning as L

    from bigroc.data import GeneratedDataModule
    from bigroc.storage import ChunkStore
    from bigroc.lit.boost_module import Boost
    from bigroc.precision import LIGHTNING
    from bigroc.scoring import ScoringSpec, prepare_scoring

    spec = ScoringSpec(ref_split="test", ref_samples=REF_SAMPLES, cache_dir=str(cache), kid_subset_size=8,
                       precision=precision, inception_download=False)
    scoring, why = prepare_scoring(spec, data_root)
    assert scoring is not None, why
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        module = Boost(source, classifier, attack, scoring=scoring,
                       chunks=ChunkStore(tmp), calibration_samples=batch)
        trainer = L.Trainer(accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
                            inference_mode=False, use_distributed_sampler=False, enable_model_summary=False,
                            precision=LIGHTNING[precision])
        trainer.test(module, datamodule=GeneratedDataModule(n, batch), verbose=False)
    return time.perf_counter() - start


def memory_child(args) -> None:
    source, classifier, attack = setup(args.steps)
    run_bigroc(source, classifier, attack, args.samples, args.batch, Path(args.cache), args.data_root)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--data-root", default="data")
    p.add_argument("--memory-at", type=int, nargs="*", default=[64, 512])
    p.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    quiet_output()
    if args.memory_child:
        return memory_child(args)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bigroc-bench-"))
    source, classifier, attack = setup(args.steps)
    from bigroc.data import read_cifar10
    from bigroc.precision import hardware_has_bf16

    print(describe_machine())
    real = read_cifar10(args.data_root, "test")[0][:REF_SAMPLES]
    n = args.samples
    precisions = ["32"] + (["bf16"] if hardware_has_bf16("cuda" if torch.cuda.is_available() else "cpu") else [])
    with CoreWatch() as watch:
        ref = run_reference(source, classifier, attack, n, args.batch, real)
        ours = {}
        for precision in precisions:
            run_bigroc(source, classifier, attack, args.batch, args.batch, cache, args.data_root, precision)  # warm-up
            ours[precision] = run_bigroc(source, classifier, attack, n, args.batch, cache, args.data_root, precision)
    print(f"{n} images, batch {args.batch}, {args.steps} steps")
    print(f"reference (torchmetrics FID+KID, plain classifier, fp32): {n / ref:6.2f} img/s")
    for precision, seconds in ours.items():
        name = "float32" if precision == "32" else "bf16 (attack and Inception)"
        print(f"bigroc (run_boost.py's path), {name:27s}: {n / seconds:6.2f} img/s  ({ref / seconds:.2f}x)")
    print(watch.verdict())
    for count in args.memory_at:
        out = subprocess.run([sys.executable, __file__, "--memory-child", "--samples", str(count),
                              "--batch", str(args.batch), "--steps", str(args.steps), "--cache", str(cache),
                              "--data-root", args.data_root], capture_output=True, text=True, check=True)
        peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]
        print(f"peak resident memory at {count:6d} images: {peak:7.0f} MiB")


if __name__ == "__main__":
    main()
