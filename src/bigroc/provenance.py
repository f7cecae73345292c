"""What a result needs to say about where it came from: command, machine, versions."""

from __future__ import annotations

import platform
import shlex
import sys

import torch


def command_line() -> str:
    """The command as typed: ``python train_robust.py classifier=resnet18 ...``."""
    return " ".join(["python", *map(shlex.quote, sys.argv)])


def machine() -> str:
    """``NVIDIA H100 80GB HBM3`` or ``CPU x86_64, 2 threads``, plus torch's version."""
    if torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
    else:
        device = f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
    return f"{device}; torch {torch.__version__}; Python {platform.python_version()}"
