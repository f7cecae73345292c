"""Throughput of ``bigroc()`` against a reference PGD loop, in one process.

    python benchmarks/bench_boost.py                          # ResNet-18 and -50, batch 64, 30 steps
    python benchmarks/bench_boost.py --archs resnet50 --steps 5

The reference is the straightforward loop of MadryLab's attacker (and of the official
BIGRoC notebooks): per step clone/detach, mean cross-entropy, ``autograd.grad``, L2-normalised
step, ``renorm`` projection, clamp; contiguous fp32 model with trainable parameters. Every
variant boosts the same images with the same random weights; the table gives images/s
(each image boosted ``--steps`` times), the speed-up over the reference, the peak memory
while the variant ran (GPU: allocated; CPU: resident set) and the largest pixel difference
from the reference's output. Most images agree to 1e-7; a few differ by up to ~1e-2
after 30 steps, where float rounding (summation order, channels-last kernels, folded
BatchNorm) flips a ReLU and the normalised steps carry the change on. The tests pin
agreement with MadryLab's own attacker at 1e-5 on short attacks.
"""

from __future__ import annotations

import argparse
import copy
import threading
import time
from typing import Callable

import torch
import torch.nn.functional as F

from bench_common import CoreWatch, describe_machine
from bigroc.boost import bigroc
from bigroc.models import Classifier, attack_ready, build_classifier
from bigroc.precision import hardware_has_bf16


def reference_boost(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int) -> torch.Tensor:
    """MadryLab-style targeted L2 PGD (their L2Step and Attacker loop, last iterate)."""
    step_size = eps / steps
    x0 = x.detach()
    for _ in range(steps):
        x = x.clone().detach().requires_grad_(True)
        loss = F.cross_entropy(model(torch.clamp(x, 0, 1)), y)
        (grad,) = torch.autograd.grad(-loss, [x])
        with torch.no_grad():
            g_norm = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x = x + step_size * grad / (g_norm + 1e-10)
            x = torch.clamp(x0 + (x - x0).renorm(p=2, dim=0, maxnorm=eps), 0, 1)
    return x.detach()


def _release_freed_memory() -> None:
    """Return freed heap memory to the OS (glibc), so one variant's peak starts clean."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak GPU allocation, or peak resident set sampled every 2 ms on the CPU, in MiB."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    def _rss(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _release_freed_memory()
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()


def timed(fn: Callable[[int], torch.Tensor], steps: int, device: torch.device, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(seconds per ``fn(steps)`` call, peak MiB, output) after a one-step warm-up call."""
    fn(1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        for _ in range(repeats):
            out = fn(steps)
        sync()
        seconds = (time.perf_counter() - start) / repeats
    return seconds, mem.peak, out


def variants(model: Classifier, device: torch.device, all_bf16: bool) -> dict[str, tuple[Classifier, str]]:
    """name -> (classifier, precision) for every configuration worth measuring. bf16 runs where
    the hardware has bf16 units (on AVX2-only CPUs it is emulated, 10-20x slower), or always
    with ``all_bf16``."""
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    fast = attack_ready(model)
    out = {
        "bigroc fp32 contiguous": (model, "32"),
        "bigroc fp32 channels_last": (channels_last, "32"),
        "bigroc attack_ready fp32": (fast, "32"),
    }
    if all_bf16 or hardware_has_bf16(device.type):
        out["bigroc attack_ready bf16"] = (fast, "bf16")
    if device.type == "cuda":
        out["bigroc attack_ready bf16 + compile"] = (torch.compile(fast), "bf16")
    return out


def bench_arch(arch: str, width: float, batch: int, steps: int, eps: float, repeats: int, device: torch.device,
               all_bf16: bool = False) -> None:
    torch.manual_seed(0)
    model = build_classifier(arch, width=width).to(device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    with torch.no_grad():  # BatchNorm statistics of real activations: unsaturated logits
        model.train()(x)
    model.eval()
    y = torch.randint(0, 10, (batch,), device=device)
    ref_s, ref_mem, ref_out = timed(lambda n: reference_boost(model, x, y, eps, n), steps, device, repeats)
    print(f"{arch} (width {width}), batch {batch}, {steps} steps, eps {eps} (L2, [0, 1] pixel units)")
    print(f"  {'variant':40s} {'images/s':>9s} {'vs ref':>7s} {'peak MiB':>9s} {'max|diff|':>10s}")
    print(f"  {'reference (MadryLab-style loop)':40s} {batch / ref_s:9.2f} {1.0:6.2f}x {ref_mem:9.0f} {0.0:10.1e}")
    for name, (clf, precision) in variants(model, device, all_bf16).items():
        def run(n: int) -> torch.Tensor:
            return bigroc(clf, x, y, eps=eps, steps=n, precision=precision)[0]

        s, mem, out = timed(run, steps, device, repeats)
        diff = (out.float() - ref_out).abs().max().item()
        print(f"  {name:40s} {batch / s:9.2f} {ref_s / s:6.2f}x {mem:9.0f} {diff:10.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the ResNets")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eps", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--all-bf16", action="store_true", help="bf16 even without bf16 units (emulated: slow)")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe_machine())
    with CoreWatch() as watch:
        for arch in args.archs:
            bench_arch(arch, args.width, args.batch, args.steps, args.eps, args.repeats, device, args.all_bf16)
    print(watch.verdict())


if __name__ == "__main__":
    main()
