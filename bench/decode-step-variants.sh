#!/usr/bin/env bash
# The whole-step decode kernel's compile-time variants side by side on the GPU machine, from the repository root
# (carry .gpu and dist):
#
#   bash bench/decode-step-variants.sh "" "DS_INFLIGHT=4" "DS_QKVO_ROWS=3" "DS_ATTN_KEYS=24" ...
#
# Each argument is one variant: macros for kernels/decode_step.cu (empty = the defaults). For each, the model
# (MODEL, default /tmp/llama1b, built first when missing) runs bench/decode-phases.ts (STEPS steps, default 64,
# after a PROMPT-token prompt, default 16) with MOPT_NVRTC_DEFINES set, so only decode_step.cu is recompiled;
# the log and the --trace JSON go to $OUT/step-<n>.log / .json and the step time, per-phase medians and layer
# time to stdout. A variant that runs past VARIANT_TIMEOUT seconds (default 150, compile included) is stopped
# and reported as failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/llama1b}
STEPS=${STEPS:-64}
PROMPT=${PROMPT:-16}  # the context the timed steps start at
[ -f "$MODEL/model.safetensors" ] || python3 bench/make_llama1b.py "$MODEL" > "$OUT/make_llama1b.log" 2>&1
n=0
for variant in "$@"; do
  defines=""
  for d in $variant; do defines="$defines decode_step:$d"; done
  echo "== variant $n: ${variant:-defaults}"
  MOPT_NVRTC_DEFINES="$defines" timeout -k 5 "${VARIANT_TIMEOUT:-150}" bash .gpu/run.sh node dist/bench/decode-phases.js --model "$MODEL" --steps "$STEPS" --prompt "$PROMPT" --trace "$OUT/step-$n.json" > "$OUT/step-$n.log" 2>&1 \
    || echo "   failed (exit $?): $OUT/step-$n.log"
  grep -E "fused step|median|one layer|clock" "$OUT/step-$n.log" | sort -u | sed 's/^/   /'
  n=$((n + 1))
done
