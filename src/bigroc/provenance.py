"""What a result needs to say about where it came from: command, machine, versions."""

from __future__ import annotations

import platform
import shlex
import sys

import torch


def command_line() -> str:
    """The command as typed: ``python train_robust.py classifier=resnet18 ...``."""
    return " ".join(["python", *map(shlex.quote, sys.argv)])


def cpu_model() -> str:
    """``Intel(R) Xeon(R) Processor (family 6 model 167)``: the name /proc/cpuinfo gives, with
    the family and model numbers that tell apart hosts of one name."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor's block is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def cpu_kernels() -> str:
    """The kernel family torch runs on this CPU: ``AVX2``, ``AVX512``, ``AVX512 + AMX``."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.backends.cpu.get_cpu_capability() + (" + AMX" if amx else "")


def machine() -> str:
    """``NVIDIA H100 80GB HBM3 x1`` or ``Intel(R) Xeon(R) Processor (family 6 model 167),
    AVX512 + AMX, 2 threads``, plus torch's and Python's versions."""
    if torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
    else:
        device = f"{cpu_model()}, {cpu_kernels()}, {torch.get_num_threads()} threads"
    return f"{device}; torch {torch.__version__}; Python {platform.python_version()}"
