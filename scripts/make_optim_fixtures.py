#!/usr/bin/env python3
"""Reference trajectories for mopt's optimizer pieces, computed with PyTorch and transformers.

Writes test/fixtures/optim/adamw.json: parameters, per-step gradients, the learning rate from
transformers' get_cosine_with_min_lr_schedule_with_warmup, global-norm clipping with
torch.nn.utils.clip_grad_norm_, and torch.optim.AdamW's parameters after every step (float64).
Also a cross-entropy case (torch.nn.functional.cross_entropy with ignore_index).

    python3 scripts/make_optim_fixtures.py --out test/fixtures/optim
"""
import argparse
import json
import os

import numpy as np
import torch
import transformers
from transformers import get_cosine_with_min_lr_schedule_with_warmup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/fixtures/optim")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(2024)
    shapes = [(3, 4), (5,)]
    steps, warmup, peak, min_lr = 12, 3, 0.05, 0.005
    betas, eps, wd, max_norm = (0.9, 0.95), 1e-8, 0.1, 1.0
    params = [torch.tensor(rng.standard_normal(s), dtype=torch.float64, requires_grad=True) for s in shapes]
    init = [p.detach().clone().flatten().tolist() for p in params]
    opt = torch.optim.AdamW(params, lr=peak, betas=betas, eps=eps, weight_decay=wd)
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=steps, min_lr=min_lr)
    trace = []
    for step in range(steps):
        grads = [rng.standard_normal(s) * (3.0 if step % 4 == 0 else 0.3) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        lr = opt.param_groups[0]["lr"]
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        opt.step()
        sched.step()
        trace.append({
            "lr": lr,
            "grads": [g.flatten().tolist() for g in grads],
            "grad_norm": norm,
            "params_after": [p.detach().flatten().tolist() for p in params],
        })
    logits = rng.standard_normal((2, 3, 7)) * 2
    targets = np.array([[1, 6, -100], [0, -100, 3]])
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits).reshape(-1, 7), torch.tensor(targets).reshape(-1), ignore_index=-100)
    out = {
        "producer": {"torch": torch.__version__, "transformers": transformers.__version__},
        "adamw": {
            "shapes": shapes, "steps": steps, "warmup": warmup, "peak_lr": peak, "min_lr": min_lr,
            "betas": betas, "eps": eps, "weight_decay": wd, "max_norm": max_norm,
            "params_init": init, "trace": trace,
        },
        "cross_entropy": {"logits": logits.flatten().tolist(), "shape": [2, 3, 7], "targets": targets.flatten().tolist(), "loss": float(ce)},
    }
    with open(os.path.join(args.out, "adamw.json"), "w") as f:
        json.dump(out, f)
    print("wrote", os.path.join(args.out, "adamw.json"), "torch", torch.__version__, "transformers", transformers.__version__)


if __name__ == "__main__":
    main()
