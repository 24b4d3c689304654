#!/usr/bin/env python3
"""Issue #4's calibration-speed benchmark, PyTorch eager side (bench/calib_speed.ts is mopt's): forward
pre-hooks on every nn.Linear except lm_head keep a running x.abs().amax() per module (what Model Optimizer's
max calibrator does for the `nvfp4` preset's input quantizers), over --samples x --seq tokens in batches of
--batch with the same token ids (bench/pytorch_baseline.py lehmer_ids, seeds 4004 + row). Wall time from the
first forward to the amax values on the host, after one warm-up batch; torch.no_grad(), use_cache=False.

    python3 bench/pytorch_calib_speed.py --model /tmp/llama1b --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_baseline import lehmer_ids  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="/tmp/llama1b")
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--json", default="")
    a = p.parse_args()
    dev = torch.device("cuda")
    model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).to(dev).eval()
    vocab = model.config.vocab_size
    amax: dict[str, torch.Tensor] = {}

    def hook(name):
        def f(_mod, args):
            m = args[0].abs().amax()
            prev = amax.get(name)
            amax[name] = m if prev is None else torch.maximum(prev, m)
        return f

    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and "lm_head" not in name:
            mod.register_forward_pre_hook(hook(name))
    rows = [lehmer_ids(a.seq, vocab, 4004 + i) for i in range(a.samples)]

    def run(rs):
        with torch.no_grad():
            for i in range(0, len(rs), a.batch):
                ids = torch.tensor(rs[i:i + a.batch], dtype=torch.long, device=dev)
                model(input_ids=ids, use_cache=False)

    run(rows[:a.batch])
    amax.clear()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run(rows)
    values = {k: float(v) for k, v in amax.items()}
    seconds = time.perf_counter() - t0
    res = {"framework": "pytorch", "torch": torch.__version__, "samples": a.samples, "seq": a.seq, "batch": a.batch,
           "seconds": seconds, "tokens_per_s": a.samples * a.seq / seconds, "quantizers": len(values), "amax": values}
    print(f"pytorch eager max calibration: {a.samples} x {a.seq} tokens in {seconds:.2f} s "
          f"({res['tokens_per_s']:,.0f} tok/s), {len(values)} hooked Linears")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
