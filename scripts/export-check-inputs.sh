#!/usr/bin/env bash
# Prepares scripts/check_modelopt_export.py's inputs here (no GPU needed): quantizes stories260K with each
# preset the export supports and one custom recipe that exports as MIXED_PRECISION (INT4 g32 weight-only
# attention in layer 0, NVFP4 attention in layers 1-4, FP8 gate/up, down_proj unquantized; no KV-cache
# quantization: the PyTorch check does not simulate it), exports the
# Model Optimizer checkpoint and computes mopt's float32 logits for a fixed id sequence, under DEST
# (default .gpu-data/export-check, which the GPU machine receives with carry [".gpu-data"]), and mopt's record of
# every Linear's input and output in that forward (scripts/dump-linear-io.mjs, DEST/NAME/linear-io). Then there:
#   for d in .gpu-data/export-check/*/; do python3 scripts/check_modelopt_export.py ${d}ckpt .gpu-data/export-check/ids.json ${d}logits.npy --linear-io ${d}linear-io; done
# (scripts/check_modelopt_export_numpy.py takes the same arguments and runs here.)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
DEST=${DEST:-.gpu-data/export-check}
rm -rf "$DEST"; mkdir -p "$DEST"
# the MIXED_PRECISION recipe (Model Optimizer's quant_cfg shape: ordered globs, the last match wins)
cat > "$DEST/mixed-recipe.json" <<'JSON'
{"algorithm": "max", "quant_cfg": [
  ["*", {"enable": false}],
  ["model.layers.0.self_attn.*_proj.weight_quantizer", {"format": "int4", "block_size": 32}],
  ["model.layers.[1-4].self_attn.*_proj.weight_quantizer", {"format": "nvfp4", "block_size": 16, "dynamic": true}],
  ["model.layers.[1-4].self_attn.*_proj.input_quantizer", {"format": "nvfp4", "block_size": 16, "dynamic": true}],
  ["*mlp.[gu][ap]*_proj.weight_quantizer", {"format": "fp8"}],
  ["*mlp.[gu][ap]*_proj.input_quantizer", {"format": "fp8"}],
  ["*lm_head*", {"enable": false}], ["*embed_tokens*", {"enable": false}]
]}
JSON
node -e "const t=require('fs').readFileSync('$DATA/corpora/tinyshakespeare.txt','utf8').slice(0,2000); process.stdout.write(t)" > "$DEST/text.txt"
node dist/src/cli/main.js tokenize --model "$DATA/models/stories260K-hf" --no-special --text "$(head -c 600 "$DEST/text.txt")" --json \
  | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const r=JSON.parse(s);const ids=(r.ids??r).slice(0,96);process.stdout.write(JSON.stringify([[1,...ids]]))})" > "$DEST/ids.json"
while read -r name args; do
  mkdir -p "$DEST/$name"
  node dist/src/cli/main.js quantize --model "$DATA/models/stories260K-hf" $args --calib-data "$DATA/corpora/tinystories_val_subset.txt" \
    --calib-samples 8 --seq-len 128 --eval-windows 1 --out "$DEST/$name/state" --json > /dev/null
  node dist/src/cli/main.js export --from "$DEST/$name/state" --out "$DEST/$name/ckpt" > /dev/null
  node dist/src/cli/main.js forward --model "$DEST/$name/ckpt" --ids-file "$DEST/ids.json" --out "$DEST/$name/logits.npy" > /dev/null
  # every Linear's x / in / w / y in the same model, for the per-Linear check (--linear-io $DEST/$name/linear-io)
  node scripts/dump-linear-io.mjs "$DEST/$name/ckpt" "$DEST/ids.json" "$DEST/$name/linear-io" "$DEST/$name/logits.npy" > /dev/null
  rm -rf "$DEST/$name/state"
  echo "prepared $name"
done <<LIST
fp8 --format fp8
int8_sq --format int8_sq
int4_awq --format int4_awq --group-size 32
w4a8_awq --format w4a8_awq --group-size 32
nvfp4 --format nvfp4
nvfp4_awq --format nvfp4_awq
w4a16_nvfp4 --format w4a16_nvfp4
mxfp8 --format mxfp8
mxfp4 --format mxfp4
mixed --recipe $DEST/mixed-recipe.json
LIST
