#!/usr/bin/env bash
# Issue #3's benchmark in one command on the GPU machine, from the repository root:
#
#   bash bench/run.sh
#
# 1. builds the random-weight Llama-3.2-1B-shaped checkpoint (bench/make_llama1b.py; reused when present),
# 2. runs the PyTorch / transformers baseline (bench/pytorch_baseline.py),
# 3. runs mopt's bench (dist/bench/mopt_bench.js, through .gpu/run.sh for Node and the CUDA paths),
# 4. merges both JSONs into $OUT/benchmarks.md (bench/report.py) and prints it.
#
# Needs .gpu/ (bash ../shared/gpu/pack.sh) and dist/ (npm run build) carried along; when
# dist/bench/mopt_bench.js is missing it is compiled here with the project's own tsc.
# Each step is bounded by a timeout so the whole run stays under ~8 minutes on one H200; a step that fails
# or times out still leaves its partial JSON, and the report says what is missing.
# Environment: OUT (default /tmp/out), MODEL (default /tmp/llama1b), PYTHON (default python3),
# MAKE_TIMEOUT / PYTORCH_TIMEOUT / MOPT_TIMEOUT in seconds (defaults 120 / 180 / 280). For smoke tests only:
# MAKE_ARGS (e.g. --tiny), DEVICE (default cuda), BENCH_ARGS (size flags both benchmarks accept, e.g.
# "--seq 64 --calib-batch 2 --train-batch 2 --new-tokens 20").
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/llama1b}
PY=${PYTHON:-python3}
MAKE_TIMEOUT=${MAKE_TIMEOUT:-120}
PYTORCH_TIMEOUT=${PYTORCH_TIMEOUT:-180}
MOPT_TIMEOUT=${MOPT_TIMEOUT:-280}
MAKE_ARGS=${MAKE_ARGS:-}
DEVICE=${DEVICE:-cuda}
BENCH_ARGS=${BENCH_ARGS:-}
start=$(date +%s)
stamp() { echo "[bench/run.sh +$(( $(date +%s) - start ))s] $*"; }

stamp "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader 2>&1 | head -1)"

make_cmd="$PY bench/make_llama1b.py $MODEL${MAKE_ARGS:+ $MAKE_ARGS}"
stamp "$make_cmd"
timeout -k 10 "$MAKE_TIMEOUT" $PY bench/make_llama1b.py "$MODEL" $MAKE_ARGS 2>&1 | tee "$OUT/make_llama1b.log"
make_rc=${PIPESTATUS[0]}
[ "$make_rc" -eq 0 ] || stamp "checkpoint step failed (exit $make_rc); the benchmarks will report load errors"

pt_cmd="$PY bench/pytorch_baseline.py --model $MODEL --device $DEVICE --json $OUT/pytorch.json${BENCH_ARGS:+ $BENCH_ARGS}"
stamp "$pt_cmd"
rm -f "$OUT/pytorch.json"
timeout -k 10 "$PYTORCH_TIMEOUT" $PY bench/pytorch_baseline.py --model "$MODEL" --device "$DEVICE" --json "$OUT/pytorch.json" $BENCH_ARGS 2>&1 | tee "$OUT/pytorch.log"
pt_rc=${PIPESTATUS[0]}
stamp "PyTorch baseline exit $pt_rc"

if [ ! -f dist/bench/mopt_bench.js ]; then
  stamp "dist/bench/mopt_bench.js is missing: compiling with tsc here"
  bash .gpu/run.sh node node_modules/typescript/bin/tsc -p tsconfig.json 2>&1 | tail -20 \
    || stamp "tsc reported errors (running what it emitted)"
fi
mopt_cmd="node dist/bench/mopt_bench.js --model $MODEL --device $DEVICE --json $OUT/mopt.json${BENCH_ARGS:+ $BENCH_ARGS}"
stamp "bash .gpu/run.sh $mopt_cmd"
rm -f "$OUT/mopt.json"
timeout -k 10 "$MOPT_TIMEOUT" bash .gpu/run.sh node dist/bench/mopt_bench.js --model "$MODEL" --device "$DEVICE" --json "$OUT/mopt.json" $BENCH_ARGS 2>&1 | tee "$OUT/mopt.log"
mopt_rc=${PIPESTATUS[0]}
stamp "mopt bench exit $mopt_rc"

if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- 2>/dev/null || rev="$rev + uncommitted changes"
else
  rev="unknown (no .git here)"
fi
$PY bench/report.py --pytorch "$OUT/pytorch.json" --mopt "$OUT/mopt.json" --out "$OUT/benchmarks.md" \
  --mopt-exit "$mopt_rc" --mopt-timeout "$MOPT_TIMEOUT" \
  --command "bash bench/run.sh   # commit $rev" \
  --command "$make_cmd" --command "$pt_cmd" --command "bash .gpu/run.sh $mopt_cmd"
stamp "done; report in $OUT/benchmarks.md, logs and JSON in $OUT"
