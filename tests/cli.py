"""Running the project's entry points as a user does: a subprocess, offline W&B, a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run_boost.py in seconds: 8 images, 3 steps, a 16-image reference from the test split.
BOOST_FAST = ("steps=3", "num_samples=8", "batch_size=4", "calibration.samples=16", "metrics.ref_split=test",
              "metrics.ref_samples=16", "metrics.kid_subset_size=4", "trainer.enable_progress_bar=false")


def entry(script: str, args: list[str], cwd: Path, env: dict[str, str] | None = None,
          **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python <repo>/<script> args...`` in ``cwd``; with ``popen`` keywords, a running Popen."""
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true"} | (env or {})
    cmd = [sys.executable, str(ROOT / script), *args]
    if popen:
        return subprocess.Popen(cmd, cwd=cwd, env=env, **popen)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
