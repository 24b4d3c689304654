#!/usr/bin/env bash
# Issue #3's decode launch knobs side by side on the GPU machine, from the repository root (carry .gpu and dist):
#
#   bash bench/decode-variants.sh            # MODEL (default /tmp/llama1b) is built first when missing
#
# For each variant: the decode GEMV shapes back to back in one graph (dist/bench/gemv-speed.js), then mopt's
# batch-1 decode benchmark (dist/bench/mopt_bench.js --workloads decode, 3 runs). Variants (environment of the run):
#   default             grids that fill every SM, no programmatic dependent launch
#   pdl                 MOPT_CUDA_PDL=1 (GEMVs, RoPE + KV write, decode attention, combine start while their
#                       predecessor runs and wait for it in the kernel)
#   pdl-capN            MOPT_CUDA_PDL=1 MOPT_GEMV_CTAS_PER_SM=N (N = 1, 2, 4): room on each SM for the next
#                       kernel's CTAs, so their start and weight prefetch overlap the current GEMV
# The kernels are compiled once (NVRTC cache) by a warm-up decode before the timed variants. Logs per variant in
# $OUT/decode-<variant>.log and one line each on stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
# these knobs act on the recorded multi-kernel step; generate() would otherwise take the whole-step kernel
export MOPT_FUSED_DECODE=0
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/llama1b}
[ -f "$MODEL/model.safetensors" ] || python3 bench/make_llama1b.py "$MODEL" > "$OUT/make_llama1b.log" 2>&1
bench() { timeout -k 5 "$1" bash .gpu/run.sh node "${@:2}"; }
bench 300 dist/bench/mopt_bench.js --model "$MODEL" --device cuda --workloads decode --decode-runs 1 --json "$OUT/warmup.json" > "$OUT/decode-warmup.log" 2>&1
bench 200 dist/bench/gemv-speed.js > "$OUT/gemv-warmup.log" 2>&1
run() {
  local name=$1
  shift
  { env "$@" timeout -k 5 120 bash .gpu/run.sh node dist/bench/gemv-speed.js
    env "$@" timeout -k 5 180 bash .gpu/run.sh node dist/bench/mopt_bench.js --model "$MODEL" --device cuda --workloads decode --decode-runs 3 --json "$OUT/decode-$name.json"
  } > "$OUT/decode-$name.log" 2>&1
  echo "$name: $(grep -E 'one layer' "$OUT/decode-$name.log" | head -1) | $(grep -E 'tok/s' "$OUT/decode-$name.log" | tail -1)"
}
run default MOPT_CUDA_PDL=0
run pdl MOPT_CUDA_PDL=1
for n in 1 2 4; do run "pdl-cap$n" MOPT_CUDA_PDL=1 MOPT_GEMV_CTAS_PER_SM=$n; done
