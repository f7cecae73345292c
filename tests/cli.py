"""Running the project's entry points as a user does: a subprocess, offline W&B, a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def entry(script: str, args: list[str], cwd: Path, env: dict[str, str] | None = None,
          **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python <repo>/<script> args...`` in ``cwd``; with ``popen`` keywords, a running Popen."""
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true"} | (env or {})
    cmd = [sys.executable, str(ROOT / script), *args]
    if popen:
        return subprocess.Popen(cmd, cwd=cwd, env=env, **popen)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
