#!/usr/bin/env bash
# The product's entry points on a machine with one NVIDIA GPU, in under 8 minutes, one log and
# one table (benchmarks/device_check.py). Offline machines without the package's extras:
#   bash benchmarks/device_bundle.sh .device       # here, in a developer checkout; copy .device over
#   bash benchmarks/device_check.sh --bundle .device  # there
# Anywhere: bash benchmarks/device_check.sh --reduced   (the same entries at tiny sizes on the CPU)
#
#   --data DIR         the compact CIFAR-10 (cifar10_*.npz, batches.meta, make_cifar10.py): builds
#                      <data root>/cifar-10-batches-py when missing (--data-root, default data)
#   --wheels DIR       hydra-core, omegaconf, antlr4 wheels, installed to a temporary folder if
#                      `import hydra` fails
#   --fid-network FILE default_1.pt (sets BIGROC_FID_NETWORK); or its pieces FILE.00, FILE.01, ...
#   --bundle DIR       all three, as device_bundle.sh lays them out
# Other options go to device_check.py (--reduced, --out, --log, --data-root, --budget, --skip).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
started=$(date +%s)
data="" wheels="" fid="" root=data passed=()
die() { echo "device_check.sh: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --data) data=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --fid-network) fid=$2; shift 2 ;;
    --bundle) data=$2/cifar10 wheels=$2/wheels fid=$2/default_1.pt; shift 2 ;;
    --data-root) root=$2; passed+=("$1" "$2"); shift 2 ;;
    *) passed+=("$1"); shift ;;
  esac
done
work=${TMPDIR:-/tmp}/bigroc-device-check
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}

if [[ -n $fid ]]; then  # pieces (device_bundle.sh --split) are joined and checked
  whole=$fid
  if [[ ! -f $fid && -f $fid.00 ]]; then
    mkdir -p "$work" && whole=$work/$(basename "$fid") && cat "$fid".[0-9][0-9] >"$whole"
  fi
  [[ -f $whole ]] || die "--fid-network $fid: no such file (nor pieces $fid.00, ...)"
  if [[ -f $fid.sha256 && $(sha256sum "$whole" | cut -d' ' -f1) != $(cat "$fid.sha256") ]]; then
    die "$whole does not match $fid.sha256"
  fi
  export BIGROC_FID_NETWORK=$(realpath "$whole")
fi

if ! "$PY" -c "import hydra, omegaconf" 2>/dev/null; then
  [[ -n $wheels ]] || die "hydra-core is not installed: pip install it, or give --wheels DIR"
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade \
    --target "$work/site" "$wheels"/*.whl
  export PYTHONPATH=$PYTHONPATH:$work/site
fi

if [[ ! -f $root/cifar-10-batches-py/test_batch ]]; then
  [[ -n $data ]] || die "no CIFAR-10 in $root/cifar-10-batches-py: give --data DIR (the compact copy)"
  "$PY" "$data/make_cifar10.py" "$root"
fi

exec "$PY" benchmarks/device_check.py --since "$started" "${passed[@]}"
