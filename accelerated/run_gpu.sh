#!/usr/bin/env bash
# The accelerated tier's GPU run: the one script for the GPU machine (see accelerated/RESULTS.md).
#   bash accelerated/run_gpu.sh [OUTDIR]        (OUTDIR defaults to $OUT, else ./out/gpu)
# Needs .device-wheels/ in the checkout (PyCUDA source + wheels, /work/shared/device/README.md).
# Steps (each logged to OUTDIR; the script goes on after a failing step and exits non-zero):
#   1. PyCUDA: install/build from .device-wheels (build-pycuda.sh); the built wheel lands in OUTDIR
#   2. natprec importable (editable install into a venv that sees the system packages)
#   3. kernels compile (accelerated/compile_kernels.sh)
#   4. conformance/test_tiers.py on the accelerated tier, hypothesis profile 'thorough'
#   5. conformance/test_exhaustive.py (exhaustive 16-bit; all float32 patterns when
#      NATPREC_EXHAUSTIVE_FP32=1 is set by the caller)
#   6. bench/bench_accelerated.py -> OUTDIR/bench_accelerated.json
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-$PWD/out/gpu}}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
W=.device-wheels
status=0
step() {  # step NAME CMD...: run, log to OUTDIR/NAME.log, record the exit code
  local name=$1; shift
  echo "=== $name: $*"
  "$@" > "$OUTDIR/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUTDIR/$name.log"
  echo "$name rc=$rc" | tee -a "$OUTDIR/summary.txt"
  [ $rc -eq 0 ] || status=1
  return $rc
}
: > "$OUTDIR/summary.txt"
nvidia-smi > "$OUTDIR/nvidia-smi.txt" 2>&1 || true

[ -d "$W" ] || { echo "missing $W (copy /work/shared/device/wheels/* and build-pycuda.sh there)" | tee -a "$OUTDIR/summary.txt"; exit 2; }
step pycuda env OUT="$OUTDIR" bash "$W/build-pycuda.sh" "$W" || exit 1
export PYTHONPATH=/tmp/site:${PYTHONPATH:-}

if [ ! -x /tmp/natprec-venv/bin/python ]; then
  step venv python3 -m venv --system-site-packages /tmp/natprec-venv || exit 1
fi
PY=/tmp/natprec-venv/bin/python
if ! step install "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .; then
  # Fallback without setuptools: a symlink shim of pyproject's package-dir mapping.
  status=0
  shim=/tmp/natprec-shim; rm -rf "$shim"; mkdir -p "$shim/natprec"
  for e in src/natprec/*; do ln -s "$PWD/$e" "$shim/natprec/"; done
  ln -s "$PWD/reference" "$shim/natprec/reference"
  ln -s "$PWD/accelerated" "$shim/natprec/accelerated"
  ln -s "$PWD/conformance" "$shim/natprec/conformance"
  export PYTHONPATH="$shim:$PYTHONPATH"
  echo "install: using the symlink shim $shim" | tee -a "$OUTDIR/summary.txt"
fi
step import "$PY" -c "import natprec.accelerated as a; print(a.gpu_available())" || exit 1

step compile accelerated/compile_kernels.sh

step tiers env NATPREC_HYPOTHESIS_PROFILE=thorough "$PY" -m pytest -p natprec.conformance.pytest_plugin \
  conformance/test_tiers.py -rs --junitxml="$OUTDIR/tiers.xml"
step gpu_exhaustive env NATPREC_HYPOTHESIS_PROFILE=thorough "$PY" -m pytest -p natprec.conformance.pytest_plugin \
  conformance/test_exhaustive.py -rs --durations=20 --junitxml="$OUTDIR/gpu_exhaustive.xml"
step bench env NATPREC_BENCH_OUT="$OUTDIR" "$PY" -m pytest -p natprec.conformance.pytest_plugin -q -s \
  bench/bench_accelerated.py -rs

echo "=== summary"; cat "$OUTDIR/summary.txt"
exit $status
