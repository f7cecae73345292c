"""The benchmark scripts run (their figures are not tested: speed is measured, not asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_in_reduced_mode_on_the_cpu(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PY": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--reduced"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "reduced mode" in out and "boost on cpu: in the ball" in out and "Inception on cpu" in out
    for row in ("boost resnet18 T=2 32", "boost resnet18 T=2 bf16", "Inception features 32",
                "Inception features bf16", "robust training resnet18 32-true", "robust training resnet18 bf16-mixed"):
        assert row in out, row
    assert "cores:" in out or "WARNING" in out
