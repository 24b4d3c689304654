#!/usr/bin/env bash
# Compile-checks every CUDA kernel source (src/backend/cuda/kernels/*.cu) with nvcc for sm_90, the way
# the backend compiles them with NVRTC at run time (C++17, no fused multiply-add). One line per file;
# exits non-zero when any file fails. Without nvcc (CI has no CUDA toolkit) it says so and exits 0.
# nvcc finds the kernels' local headers (common.cuh) through -I; NVRTC gets them inlined by kernels.ts.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=src/backend/cuda/kernels

nvcc=""
for c in ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} $(ls -d /usr/local/cuda*/bin/nvcc 2>/dev/null | sort -rV) "$(command -v nvcc || true)"; do
  if [ -n "$c" ] && [ -x "$c" ]; then nvcc="$c"; break; fi
done
if [ -z "$nvcc" ]; then
  echo "check-cuda-sources: nvcc not found (CUDA_HOME, /usr/local/cuda*/bin, PATH); skipping the kernel compile check"
  exit 0
fi

status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for f in "$dir"/*.cu; do
  start=$(date +%s)
  if "$nvcc" -arch=sm_90 -std=c++17 -fmad=false -I"$dir" -cubin -o /dev/null "$f" >"$log" 2>&1; then
    echo "ok    $f ($(( $(date +%s) - start )) s)"
  else
    echo "FAIL  $f"
    sed 's/^/      /' "$log"
    status=1
  fi
done
exit $status
