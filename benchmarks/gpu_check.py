"""One check of a machine with an NVIDIA GPU, in under 8 minutes: correctness, then speed.

    bash benchmarks/gpu_check.sh             # on the GPU machine
    python benchmarks/gpu_check.py --reduced # anywhere: the same code paths on tiny sizes (CPU)

Correctness (device against CPU): boosting stays in its eps-ball and in [0, 1] and agrees with
the CPU result; the Inception network's pool3 features agree with the CPU's. Speed, one table:
boosting a CIFAR ResNet-50 at T=30 (float32 and bf16, with and without ``torch.compile``),
Inception feature throughput (float32, bf16), robust training images/s (float32, bf16).
``--reduced`` runs a ResNet-18 at width 16, two steps, a few images, no compile: it shows the
script works before a GPU is at hand, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_common import CoreWatch, describe_machine, quiet_output
from bigroc.attacks import AttackSpec
from bigroc.boost import bigroc
from bigroc.metrics.features import InceptionFeatures
from bigroc.models import attack_ready, build_classifier


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn, images: int, device: torch.device, repeats: int = 2) -> float:
    """Images/s of ``fn()`` (which handles ``images`` images), after one warm-up call."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return images * repeats / (time.perf_counter() - start)


def check_boost(device: torch.device, arch: str, width: float, batch: int, steps: int) -> str:
    torch.manual_seed(0)
    model = build_classifier(arch, width=width)
    x = torch.rand(batch, 3, 32, 32)
    with torch.no_grad():
        model.train()(x)
    model.eval()
    y = torch.randint(0, 10, (batch,))
    on_cpu, _ = bigroc(attack_ready(model), x, y, eps=1.0, steps=steps)
    on_device, _ = bigroc(attack_ready(model.to(device)), x.to(device), y.to(device), eps=1.0, steps=steps)
    delta = (on_device.cpu() - x).flatten(1).norm(dim=1)
    assert (delta <= 1.0 + 1e-4).all() and on_device.min() >= 0 and on_device.max() <= 1, "left the ball"
    diff = (on_device.cpu() - on_cpu).flatten(1).norm(dim=1).median().item()
    assert diff < 0.05, f"device and CPU boosting differ by {diff} (median L2)"
    return f"boost on {device}: in the ball and [0, 1]; median L2 distance to the CPU result {diff:.1e}"


def check_inception(device: torch.device, images: int) -> str:
    u8 = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    net = InceptionFeatures()
    on_cpu = net(u8)
    on_device = net.to(device)(u8.to(device)).cpu()
    rel = ((on_device - on_cpu).abs().max() / on_cpu.abs().max()).item()
    assert rel < 1e-3, f"Inception features on {device} differ from the CPU's by {rel:.1e}"
    return f"Inception on {device}: pool3 within {rel:.1e} (relative) of the CPU's"


def boost_rates(device: torch.device, arch: str, width: float, batch: int, steps: int, compile_too: bool) -> dict:
    torch.manual_seed(0)
    model = attack_ready(build_classifier(arch, width=width).to(device))
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    out = {}
    for precision in ("32", "bf16"):
        out[f"boost {arch} T={steps} {precision}"] = rate(
            lambda m=model, p=precision: bigroc(m, x, y, eps=1.0, steps=steps, precision=p), batch, device)
        if compile_too:
            compiled = torch.compile(model)
            out[f"boost {arch} T={steps} {precision} + compile"] = rate(
                lambda m=compiled, p=precision: bigroc(m, x, y, eps=1.0, steps=steps, precision=p), batch, device)
    return out


def inception_rates(device: torch.device, images: int) -> dict:
    u8 = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, device=device)
    return {f"Inception features {p}": rate(lambda n=InceptionFeatures(batch_size=images, precision=p).to(device):
                                            n(u8), images, device) for p in ("32", "bf16")}


def training_rates(device: torch.device, arch: str, width: float, batch: int, steps: int) -> dict:
    from bench_train import lightning_steps

    setting = dict(arch=arch, width=width, attack=AttackSpec(eps=0.5, steps=3, random_start=True),
                   channels_last=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (steps + 1, batch, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (steps + 1, batch), generator=g)
    return {f"robust training {arch} {p}": batch * steps / lightning_steps(setting, x, y, steps, p)
            for p in ("32-true", "bf16-mixed")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true", help="tiny sizes: check the script, not the machine")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    reduced = args.reduced or device.type != "cuda"
    arch, width, batch, steps = ("resnet18", 0.25, 4, 2) if reduced else ("resnet50", 1.0, 256, 30)
    quiet_output()
    print(describe_machine() + (" (reduced mode: the figures mean nothing)" if reduced else ""))
    print(check_boost(device, arch, width, min(batch, 16), min(steps, 10)))
    print(check_inception(device, 4 if reduced else 64))
    table = {}
    with CoreWatch() as watch:
        table.update(boost_rates(device, arch, width, batch, steps, compile_too=not reduced))
        table.update(inception_rates(device, 4 if reduced else 500))
        table.update(training_rates(device, arch, width, 8 if reduced else 256, 2 if reduced else 20))
    print(f"{'what':44s} {'images/s':>10s}")
    for name, value in table.items():
        print(f"{name:44s} {value:10.1f}")
    print(watch.verdict())


if __name__ == "__main__":
    main()
