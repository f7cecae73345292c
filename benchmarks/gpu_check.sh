#!/usr/bin/env bash
# A machine with one NVIDIA GPU: CUDA checks of boosting and scoring, then one table of
# boosting, Inception and robust-training throughput, within 8 minutes.
# Anywhere else: bash benchmarks/gpu_check.sh --reduced (the same code on tiny sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
timeout 480 "$PY" benchmarks/gpu_check.py "$@"
