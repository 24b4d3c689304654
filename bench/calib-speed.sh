#!/usr/bin/env bash
# Issue #4's calibration-speed benchmark in one command on the GPU machine (from the repository root, with
# .gpu/ and dist/ carried): builds the Llama-3.2-1B-shaped checkpoint, runs PyTorch eager and mopt NVFP4 max
# calibration over the same 512 x 2048 token ids, and prints both wall times and the largest amax disagreement.
# Environment: OUT (default /tmp/out), MODEL (default /tmp/llama1b), ARGS (e.g. "--samples 64" for a smoke test).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
MODEL=${MODEL:-/tmp/llama1b}
ARGS=${ARGS:-}
mkdir -p "$OUT"
python3 bench/make_llama1b.py "$MODEL" > "$OUT/make_llama1b.log" 2>&1 || echo "checkpoint step failed (see make_llama1b.log)"
timeout -k 10 240 python3 bench/pytorch_calib_speed.py --model "$MODEL" --json "$OUT/pytorch_calib.json" $ARGS
timeout -k 10 240 bash .gpu/run.sh node dist/bench/calib_speed.js --model "$MODEL" --device cuda --json "$OUT/mopt_calib.json" $ARGS
python3 - "$OUT/pytorch_calib.json" "$OUT/mopt_calib.json" <<'PY'
import json, sys
pt, mo = (json.load(open(p)) for p in sys.argv[1:3])
# mopt names quantizers <linear>.input_quantizer; PyTorch hooks name modules <linear>
names = [n for n in pt["amax"] if f"{n}.input_quantizer" in mo["amax"]]
rel = [abs(mo["amax"][f"{n}.input_quantizer"] - pt["amax"][n]) / max(pt["amax"][n], 1e-30) for n in names]
print(f"| {pt['samples']} x {pt['seq']} tokens | PyTorch eager {pt['seconds']:.2f} s | mopt {mo['seconds']:.2f} s | "
      f"mopt / PyTorch speed {pt['seconds'] / mo['seconds']:.2f}x | {len(names)} of {len(pt['amax'])} amax compared, "
      f"max relative difference {max(rel):.2e} |")
PY
