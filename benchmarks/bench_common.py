"""What every benchmark prints first (the machine) and last (whether the cores were its own).

Figures taken while another process loads the cores are not figures: two 2-thread torch
jobs on two cores slow each other by up to 11x. :class:`CoreWatch` measures how many cores
other processes kept busy during the benchmark and says so.
"""

from __future__ import annotations

import os
import time

import torch

from bigroc.provenance import cpu_kernels, cpu_model


def quiet_output() -> None:
    """A benchmark's console as the entries' is: Lightning's tips and notices dropped, the
    libraries' known deprecation notes off, any other warning on one line."""
    from bigroc.entry import quiet_libraries, quiet_lightning

    quiet_libraries()
    quiet_lightning()


def describe_machine() -> str:
    """CPU model, core count, kernel capability (AVX2 / AVX-512, AMX), torch, GPU."""
    text = (f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, kernels {cpu_kernels()}")
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name(0)}"
    return text


def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


class CoreWatch:
    """Cores kept busy by other processes while the block ran (Linux; else unknown)."""

    def __enter__(self) -> CoreWatch:
        self.others: float | None = None
        try:
            self._busy, self._own, self._wall = _busy_jiffies(), sum(os.times()[:4]), time.perf_counter()
        except OSError:
            self._busy = None
        return self

    def __exit__(self, *exc) -> None:
        if self._busy is None:
            return
        tick = os.sysconf("SC_CLK_TCK")
        wall = max(time.perf_counter() - self._wall, 1e-9)
        busy = (_busy_jiffies() - self._busy) / tick
        own = sum(os.times()[:4]) - self._own  # this process and the children it waited for
        self.others = max(0.0, busy - own) / wall

    def verdict(self) -> str:
        if self.others is None:
            return "cores: unknown whether other processes ran"
        if self.others > 0.25:
            return (f"WARNING: other processes kept {self.others:.1f} cores busy during the measurement: "
                    "these figures are not benchmarks; measure again on quiet cores")
        return f"cores: quiet (other processes {self.others:.2f} cores)"
