"""Arithmetic precision: float32, or bf16 autocast where the hardware has bf16 units.

CPUs differ: AVX-512 BF16 and AMX-BF16 units make bf16 convolutions several times faster
than float32; on an AVX2-only CPU bf16 is emulated and 10-20x slower. So bf16 is chosen by
capability (``auto``), never assumed. Names: ``"32"`` and ``"bf16"``, as Lightning's
``32-true`` and ``bf16-mixed``.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("32", "bf16")
LIGHTNING = {"32": "32-true", "bf16": "bf16-mixed"}


def cpu_has_bf16_units() -> bool:
    """AMX tiles or AVX-512 BF16 that torch's kernels may use (False where it cannot tell).

    Kernels limited to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``:
    what an AVX2-only CPU runs) count as none: bf16 is emulated there.
    """
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if "AVX512" not in torch.backends.cpu.get_cpu_capability() or not (
            isa == "ALL" or isa.startswith(("AVX512", "AVX10")) or "AMX" in isa):
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(amx or avx512_bf16)


def hardware_has_bf16(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device_type == "cpu" and cpu_has_bf16_units()


def resolve(precision: str, device_type: str = "cpu") -> str:
    """``auto`` -> ``bf16`` where ``device_type`` has bf16 units, else ``32``; others checked."""
    precision = str(precision)
    if precision == "auto":
        return "bf16" if hardware_has_bf16(device_type) else "32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(precision: str, device_type: str) -> AbstractContextManager:
    """bf16 autocast on ``device_type`` for ``"bf16"``; nothing for ``"32"``."""
    if resolve(precision, device_type) == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return nullcontext()
