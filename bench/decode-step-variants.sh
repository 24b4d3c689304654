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
# time to stdout. REPEAT=n runs the list n times interleaved and ends with each variant's step times and
# median (also in $OUT/variants-summary.tsv). A variant that runs past VARIANT_TIMEOUT seconds (default 150,
# compile included) is stopped and reported as failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/llama1b}
STEPS=${STEPS:-64}
PROMPT=${PROMPT:-16}  # the context the timed steps start at
[ -f "$MODEL/model.safetensors" ] || python3 bench/make_llama1b.py "$MODEL" > "$OUT/make_llama1b.log" 2>&1
REPEAT=${REPEAT:-1}  # rounds over the whole list, interleaved (A B A B ...): the spread between rounds shows
summary="$OUT/variants-summary.tsv"
: > "$summary"
n=0
for round in $(seq 1 "$REPEAT"); do
  for variant in "$@"; do
    defines=""
    for d in $variant; do defines="$defines decode_step:$d"; done
    echo "== variant $n (round $round): ${variant:-defaults}"
    MOPT_NVRTC_DEFINES="$defines" timeout -k 5 "${VARIANT_TIMEOUT:-150}" bash .gpu/run.sh node dist/bench/decode-phases.js --model "$MODEL" --steps "$STEPS" --prompt "$PROMPT" --trace "$OUT/step-$n.json" > "$OUT/step-$n.log" 2>&1 \
      || echo "   failed (exit $?): $OUT/step-$n.log"
    grep -E "fused step|median|one layer|clock" "$OUT/step-$n.log" | sort -u | sed 's/^/   /'
    us=$(sed -n 's/.*fused step: \([0-9.]*\) us\/step.*/\1/p' "$OUT/step-$n.log" | head -1)
    printf '%s\t%s\n' "${variant:-defaults}" "${us:-failed}" >> "$summary"
    n=$((n + 1))
  done
done
# per variant: every round's step time and their median
echo "== step time (us) per variant, rounds in order, median"
awk -F '\t' '{ t[$1] = t[$1] " " $2; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
  END { for (i = 1; i <= k; i++) { v = order[i]; m = split(t[v], a, " "); c = 0
          for (j = 1; j <= m; j++) if (a[j] != "failed") b[++c] = a[j] + 0
          for (x = 1; x <= c; x++) for (y = x + 1; y <= c; y++) if (b[y] < b[x]) { z = b[x]; b[x] = b[y]; b[y] = z }
          med = c == 0 ? "-" : (c % 2 ? b[(c + 1) / 2] : (b[c / 2] + b[c / 2 + 1]) / 2)
          printf "   %-40s %s   median %s\n", v, t[v], med; delete b } }' "$summary"
