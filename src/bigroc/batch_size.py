"""``batch_size: auto``: the batch a device runs fastest, found once and remembered.

On a CPU ``auto`` is a fixed size (:data:`CPU_BATCH`): throughput there hardly grows past
it. On a CUDA device :func:`probe` doubles the batch from :data:`START` while it fits in
memory and still raises images/s by at least :data:`MIN_GAIN`, timing the real work of one
step (a PGD step's forward and input gradient, or an Inception pass). The answer is cached
(``batch_sizes.json`` in the reference cache folder) by what it depends on: the network,
the image size, the device's name and the precision. A number the user gives always wins;
results never depend on the batch size (each image is boosted and scored on its own).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

AUTO = "auto"
CPU_BATCH = {"attack": 64, "inception": 50}
START, CAP = 64, 8192
MIN_GAIN = 1.1  # a doubling must raise images/s by 10% to be taken
CACHE_FILE = "batch_sizes.json"


def checked(value: object, name: str) -> int | str:
    """``auto``, or a positive integer; anything else is refused naming ``name``."""
    if value == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000_000:
        raise ValueError(f"{name} must be 'auto' or an integer in [1, 10000000], got {value!r}")
    return value


def images_per_second(run: Callable[[int], None], batch: int, device: torch.device, repeats: int = 2) -> float:
    """Images/s of ``run(batch)`` on ``device`` after one warm-up call."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(batch)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    sync()
    return batch * repeats / (time.perf_counter() - start)


def probe(measure: Callable[[int], float], start: int = START, cap: int = CAP) -> tuple[int, list]:
    """The batch, doubling from ``start``, past which ``measure(batch)`` (images/s) stops rising
    by :data:`MIN_GAIN`, or the last one that fits in memory.

    Returns (batch, [(batch, images/s) measured]); ``start`` itself must fit.
    """
    import torch

    measured: list[tuple[int, float]] = []
    best, batch = start, start
    while batch <= cap:
        try:
            rate = measure(batch)
        except torch.OutOfMemoryError:
            if not measured:
                raise
            break
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        measured.append((batch, rate))
        if len(measured) > 1 and rate < MIN_GAIN * measured[-2][1]:
            break
        best, batch = batch, batch * 2
    return best, [(b, round(r, 1)) for b, r in measured]


def resolve(requested: int | str, kind: str, device: torch.device, key: str,
            make_step: Callable[[], Callable[[int], None]], cache_dir: Path) -> tuple[int, dict]:
    """The batch size to use, and what to record about how it was chosen.

    ``kind`` is ``attack`` or ``inception``; ``key`` names what the answer depends on
    besides the device (network, image size, precision); ``make_step()`` gives the
    function ``step(batch)`` that does one step, called only when a probe runs.
    """
    if requested != AUTO:
        return int(requested), {"batch_size": int(requested), "chosen": "given"}
    if device.type != "cuda":
        return CPU_BATCH[kind], {"batch_size": CPU_BATCH[kind], "chosen": f"auto: {CPU_BATCH[kind]} on {device.type}"}
    import torch

    full_key = f"{kind} | {key} | {torch.cuda.get_device_name(device)}"
    path = Path(cache_dir) / CACHE_FILE
    cache = _read(path)
    if full_key not in cache:
        started = time.perf_counter()
        step = make_step()
        best, measured = probe(lambda batch: images_per_second(step, batch, device))
        cache[full_key] = {"batch_size": best, "images_per_s": measured,
                           "probe_seconds": round(time.perf_counter() - started, 1)}
        _write(path, cache)
        log.info("batch_size=auto for %s: %d (images/s by batch: %s)", kind, best, measured)
    entry = cache[full_key]
    return int(entry["batch_size"]), {**entry, "chosen": "auto: probed on " + full_key.split(" | ")[-1]}


def _read(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: probed again, then rewritten
    return value if isinstance(value, dict) else {}


def _write(path: Path, cache: dict) -> None:
    from bigroc.storage import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(cache, indent=2)))


def attack_step(model: torch.nn.Module, image_shape: tuple[int, int], device: torch.device,
                autocast: bool) -> Callable[[int], None]:
    """One PGD step's work on ``batch`` random images: forward, loss, input gradient."""
    import torch

    height, width = image_shape

    def run(batch: int) -> None:
        x = torch.rand(batch, 3, height, width, device=device, requires_grad=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(x).float().logsumexp(1).sum()
        torch.autograd.grad(loss, x)

    return run


def inception_pass(net: torch.nn.Module, device: torch.device) -> Callable[[int], None]:
    """One Inception pass over ``batch`` random uint8 32x32 images (resized inside)."""
    import torch

    def run(batch: int) -> None:
        with torch.no_grad():
            net._rows(torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device))

    return run
