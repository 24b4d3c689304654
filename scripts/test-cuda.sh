#!/usr/bin/env bash
# Runs the test suite with the CUDA backend enabled, on the GPU machine (see DEVELOPERS.md):
#   here:   npm run build && bash ../shared/gpu/pack.sh && bash scripts/pack-gpu-data.sh
#   device: run `bash scripts/test-cuda.sh [filters]` with carry [".gpu", "dist", ".gpu-data"]
# Every test written with forEachBackend then runs on cpu and cuda; the full log goes to $OUT/cuda-tests.log.
set -uo pipefail
cd "$(dirname "$0")/.."
export MOPT_TEST_CUDA=1
export MOPT_SHARED_DATA=${MOPT_SHARED_DATA:-$PWD/.gpu-data}
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bash .gpu/run.sh node scripts/run-tests.mjs "$@" > "$OUT/cuda-tests.log" 2>&1
status=$?
grep -E "^not ok|^# (tests|pass|fail|skipped)|relative logits" "$OUT/cuda-tests.log"
exit $status
