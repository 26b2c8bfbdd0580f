#!/usr/bin/env bash
# The accelerated tier's GPU run: the one script for the GPU machine (see accelerated/RESULTS.md).
#   bash accelerated/run_gpu.sh [OUTDIR]        (OUTDIR defaults to $OUT, else ./out/gpu)
# Runs on the machine as it is: its `python3` (itself a venv with torch, numpy, pytest,
# hypothesis) gets natprec installed editable, PyCUDA from the kit in .device-wheels/ or
# ../shared/device/ (build-pycuda.sh: a prebuilt wheel into /tmp/site, the sdist only if it
# fails).  Each step is logged to OUTDIR/NAME.log, has its own time limit (seconds, so that the
# whole run fits in about 8 minutes), and the script goes on after a failing step:
#   pycuda, install, import   setup (seconds)
#   compile      accelerated/compile_kernels.sh
#   host         tests/test_accelerated_host.py + _sweep.py + _census.py + _blocks.py + _flat.py (the host build)
#   tiers        conformance/test_tiers.py, hypothesis profile ci                     (90 s)
#   exhaustive16 conformance/test_exhaustive.py without the float32 sweep             (200 s)
#   float32      all 2**32 float32 patterns x {nf4, float4_e2m1fn, fp4_bnb} x every tie rule,
#                checked on the device against an independent float64 oracle         (120 s)
#   bench        bench/bench_accelerated.py -> OUTDIR/bench_accelerated.json          (120 s)
# OUTDIR gets summary.txt, summary.json (step, rc, seconds), every log and JUnit XML.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-$PWD/out/gpu}}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
PY="${PYTHON:-python3}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
status=0
: > "$OUTDIR/summary.txt"
echo "[" > "$OUTDIR/summary.json.part"
step() {  # step NAME LIMIT_S CMD...: run under a time limit, log to OUTDIR/NAME.log, record rc and time
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - t0))
  tail -n 15 "$OUTDIR/$name.log"
  echo "$name rc=$rc ${dt}s" | tee -a "$OUTDIR/summary.txt"
  echo "  {\"step\": \"$name\", \"rc\": $rc, \"seconds\": $dt}," >> "$OUTDIR/summary.json.part"
  [ $rc -eq 0 ] || status=1
  return $rc
}
finish() {
  { sed '$ s/,$//' "$OUTDIR/summary.json.part"; echo "]"; } > "$OUTDIR/summary.json"
  rm -f "$OUTDIR/summary.json.part"
  echo "=== summary"; cat "$OUTDIR/summary.txt"
  exit "$1"
}
{ nvidia-smi; nvcc --version; "$PY" -c "import sys, numpy, torch; print(sys.version); print('numpy', numpy.__version__, 'torch', torch.__version__, torch.version.cuda)"; git rev-parse HEAD; date -u; } > "$OUTDIR/environment.txt" 2>&1

# PyCUDA kit: .device-wheels/ (carried) or ../shared/device/ (wheels/ + scripts), gathered in one folder.
KIT=/tmp/natprec-kit
rm -rf "$KIT" && mkdir -p "$KIT"
if [ -d .device-wheels ]; then
  cp .device-wheels/* "$KIT"/ 2>/dev/null
elif [ -d ../shared/device ]; then
  cp ../shared/device/wheels/* ../shared/device/build-pycuda.sh ../shared/device/parcc_sitecustomize.py "$KIT"/ 2>/dev/null
fi
[ -f "$KIT/build-pycuda.sh" ] || { echo "no PyCUDA kit (.device-wheels/ or ../shared/device/)" | tee -a "$OUTDIR/summary.txt"; finish 2; }
step pycuda 300 env OUT="$OUTDIR" bash "$KIT/build-pycuda.sh" "$KIT" || finish 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

# natprec into the machine's own python (a new venv would not see its torch and numpy).
if ! step install 120 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .; then
  status=0  # fallback without a build backend: a symlink shim of pyproject's package-dir mapping
  shim=/tmp/natprec-shim; rm -rf "$shim"; mkdir -p "$shim/natprec"
  for e in src/natprec/*; do ln -s "$PWD/$e" "$shim/natprec/"; done
  for d in reference accelerated conformance; do ln -s "$PWD/$d" "$shim/natprec/$d"; done
  export PYTHONPATH="$shim:$PYTHONPATH"
  echo "install: using the symlink shim $shim" | tee -a "$OUTDIR/summary.txt"
fi
step import 60 "$PY" -c "import natprec.accelerated as a; ok, why = a.gpu_available(); print(ok, why); assert ok" || finish 1

step compile 60 bash accelerated/compile_kernels.sh
PT=("$PY" -m pytest -p natprec.conformance.pytest_plugin)
step host 150 env NATPREC_HYPOTHESIS_PROFILE=ci "${PT[@]}" -q tests/test_accelerated_host.py \
  tests/test_accelerated_sweep.py tests/test_accelerated_census.py tests/test_accelerated_blocks.py \
  tests/test_accelerated_flat.py --junitxml="$OUTDIR/host.xml"
step tiers 90 env NATPREC_HYPOTHESIS_PROFILE=ci "${PT[@]}" conformance/test_tiers.py -rs \
  --junitxml="$OUTDIR/tiers.xml"
step exhaustive16 200 env NATPREC_HYPOTHESIS_PROFILE=ci "${PT[@]}" conformance/test_exhaustive.py \
  -k "not all_float32" -rs --durations=10 --junitxml="$OUTDIR/exhaustive16.xml"
step float32 120 env NATPREC_EXHAUSTIVE_FP32=1 NATPREC_EXHAUSTIVE_TIES=even,down,up,away "${PT[@]}" \
  conformance/test_exhaustive.py -k all_float32 -s -rs --durations=12 --junitxml="$OUTDIR/float32.xml"
# natprec report's passes on the GPU and its statistics on this tier (issue 11): a small model, both devices compared.
step model 90 "${PT[@]}" -q tests/test_model_measure.py -k "cuda or accelerated_tier" -rs --junitxml="$OUTDIR/model.xml"
step bench 120 env NATPREC_BENCH_OUT="$OUTDIR" "${PT[@]}" -q -s bench/bench_accelerated.py -rs
if [ -f "$OUTDIR/bench_accelerated.json" ]; then
  "$PY" bench/results_table.py "$OUTDIR/bench_accelerated.json" > "$OUTDIR/bench_table.md" 2>&1 || status=1
fi
finish $status
