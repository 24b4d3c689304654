#!/usr/bin/env bash
# Whole `mopt quantize` runs over several presets and algorithms on stories260K, one line each (perplexity
# before / after on the held-out windows, mean KL) — to compare a device's results with the CPU's.
#   here:        bash scripts/quantize-smoke.sh cpu ../shared/data node dist/src/cli/main.js
#   GPU machine: bash scripts/quantize-smoke.sh cuda .gpu-data bash .gpu/run.sh node dist/src/cli/main.js
#                (carry [".gpu", "dist", ".gpu-data"]; see DEVELOPERS.md)
# Arguments: DEVICE, the shared data folder, then the command that runs the mopt CLI.
set -uo pipefail
dev=$1; shift; data=$1; shift
while IFS= read -r f; do
  out=$("$@" quantize --model "$data/models/stories260K-hf" $f --calib-data "$data/corpora/tinystories_val_subset.txt" --out "/tmp/quantize-smoke-$$" --device "$dev" --json 2>/tmp/quantize-smoke.err)
  rc=$?
  rm -rf "/tmp/quantize-smoke-$$"
  # the GPU wrapper prints a line before mopt's JSON: parse from the first brace
  echo "$out" | python3 -c "import json,sys; t=sys.stdin.read(); r=json.loads(t[t.index('{'):]); e=r['evaluation']; print('$dev', '$f', 'before %.4f after %.4f kl %.5f' % (e['before']['ppl'], e['after']['ppl'], e['kl']['mean']))" 2>/dev/null \
    || { echo "$dev $f FAILED (exit $rc)"; tail -3 /tmp/quantize-smoke.err; }
done <<'LIST'
--format nvfp4 --kv-cache fp8
--format int8_sq
--format int4_awq --group-size 32 --algorithm gptq
--format int4_awq --group-size 32 --algorithm awq_full
--format fp8
--format mxfp8
LIST
