#!/usr/bin/env bash
# Compile every CUDA kernel of the accelerated tier for sm_80 and sm_90 (no GPU needed).
# Flags as the tier's bit-exactness rules demand: --fmad=false (no FMA contraction), no
# fast-math, no FTZ (nvcc's defaults: -ftz=false -prec-div=true -prec-sqrt=true, set
# explicitly here), and every warning is an error.  Output goes to a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kdir="${NATPREC_KERNEL_DIR:-$here/kernels}"
NVCC="${NVCC:-nvcc}"
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "compile_kernels.sh: nvcc not found (set NVCC=...)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
shopt -s nullglob
srcs=("$kdir"/*.cu)
[ ${#srcs[@]} -gt 0 ] || { echo "compile_kernels.sh: no kernels in $kdir" >&2; exit 1; }
flags=(--cubin -std=c++17 --fmad=false -ftz=false -prec-div=true -prec-sqrt=true
       -Werror all-warnings -Xptxas -Werror -I "$kdir")
pids=()
for arch in sm_80 sm_90; do
  for src in "${srcs[@]}"; do
    name="$(basename "$src" .cu)"
    ( rc=0
      "$NVCC" "${flags[@]}" -arch="$arch" -o "$tmp/$name.$arch.cubin" "$src" >"$tmp/$name.$arch.log" 2>&1 || rc=$?
      if [ $rc -ne 0 ] || [ -s "$tmp/$name.$arch.log" ]; then
        echo "FAIL $name ($arch):" >&2; cat "$tmp/$name.$arch.log" >&2; exit 1
      fi
      echo "ok   $name ($arch)" ) &
    pids+=($!)
  done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail -eq 0 ] || { echo "compile_kernels.sh: kernel compilation failed" >&2; exit 1; }
echo "compile_kernels.sh: ${#srcs[@]} kernel file(s) compiled for sm_80 and sm_90"
