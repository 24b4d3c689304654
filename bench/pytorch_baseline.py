#!/usr/bin/env python3
"""PyTorch / transformers side of issue #3's benchmark: the same three workloads mopt's bench/mopt_bench.ts runs,
on the same checkpoint (bench/make_llama1b.py), with the same token ids, sizes and timing method.

    python3 bench/pytorch_baseline.py --model /tmp/llama1b --json $OUT/pytorch.json

Setup (recorded in the JSON): bfloat16 weights loaded with `LlamaForCausalLM.from_pretrained(dir, dtype=bf16)`,
transformers' default attention implementation (sdpa), no torch.compile, TF32 left at torch's defaults.

  ceilings  device-to-device copy bandwidth (bytes read + written) and bf16 GEMM rate 8192^3, both on random
            data, median of CUDA-event-timed repeats. HBM floor for decode = weight bytes / copy bandwidth.
  calib     max-calibration forward: forward hooks on every nn.Linear take x.abs().amax() of the input and
            keep a running max per module in a dict (Model Optimizer's max calibrator), batch 8 x seq 2048,
            torch.no_grad(), use_cache=False. tokens/s from the median CUDA-event time per forward.
  decode    batch-1 greedy `model.generate(max_new_tokens=256, min_new_tokens=256, do_sample=False)` from a
            16-token prompt; tokens/s = 256 / wall time (torch.cuda.synchronize() before and after).
  train     forward + backward + AdamW step at batch 4 x 2048: bf16 parameters, bf16 gradients,
            torch.optim.AdamW(lr=1e-5, weight_decay=0.01, fused=False, foreach default) whose moments are
            bf16 too (torch keeps AdamW state in the parameter's dtype; no fp32 master weights, no autocast);
            loss = transformers' causal-LM cross-entropy (labels=input_ids: next-token, logits upcast to
            float32); optimizer.zero_grad(set_to_none=True) inside the timed step.

The workloads run in the order ceilings, calib, decode, train (decode before train, so both frameworks decode
with the checkpoint's own weights and their greedy tokens can be compared). Token ids come from a
Lehmer generator shared with mopt_bench.ts (x <- 48271 x mod 2^31-1, id = x mod vocab). Each workload's failure
is recorded as {"error": ...} and the others still run. The JSON is rewritten after every workload.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

# Seeds of the shared id streams (same constants in bench/mopt_bench.ts).
SEED_CALIB = 1001
SEED_TRAIN = 2002
SEED_PROMPT = 3003
DATASHEET_BF16_TFLOPS = 989.4  # H100/H200 SXM dense bf16, for a second MFU column


def lehmer_ids(n: int, vocab: int, seed: int) -> list[int]:
    x = seed % 2147483647 or 1
    out = []
    for _ in range(n):
        x = (48271 * x) % 2147483647
        out.append(x % vocab)
    return out


def err(e: BaseException) -> dict:
    return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}


class Clock:
    """CUDA events around the region on a GPU; host clock after synchronize otherwise."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.method = "cuda-events" if self.cuda else "host-clock"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time_ms(self, fn) -> float:
        if self.cuda:
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def measure(clock: Clock, fn, warmup: int, iters: int, budget_s: float) -> dict:
    """Warm-up runs, then up to `iters` timed runs (at least one) while the time budget lasts."""
    t0 = time.perf_counter()
    done_warm = 0
    for _ in range(warmup):
        fn()
        clock.sync()
        done_warm += 1
        if time.perf_counter() - t0 > budget_s / 3:
            break
    times = []
    t1 = time.perf_counter()
    for _ in range(max(1, iters)):
        times.append(clock.time_ms(fn))
        if time.perf_counter() - t1 > budget_s:
            break
    return {"warmup": done_warm, "iters": len(times), "times_ms": [round(t, 4) for t in times],
            "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "budget_s": budget_s, "truncated_by_budget": len(times) < max(1, iters)}


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_bytes(device: torch.device):
    return torch.cuda.max_memory_allocated() if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def ceilings(device: torch.device, clock: Clock) -> dict:
    if device.type != "cuda":
        return {"skipped": "no GPU"}
    out: dict = {}
    n = 512 * 2**20  # 512 Mi float32 = 2 GiB, far over the 60 MB L2
    src = torch.randn(n, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    m = measure(clock, lambda: dst.copy_(src), warmup=3, iters=20, budget_s=10)
    moved = 2 * src.numel() * src.element_size()
    out["copy"] = {"bytes_read_plus_written": moved, "median_ms": m["median_ms"],
                   "GB_per_s": moved / (m["median_ms"] * 1e-3) / 1e9}
    if not torch.equal(dst[:1000], src[:1000]):
        raise RuntimeError("copy check failed")
    del src, dst
    k = 8192
    a = torch.randn(k, k, device=device, dtype=torch.bfloat16)
    b = torch.randn(k, k, device=device, dtype=torch.bfloat16)
    m = measure(clock, lambda: a @ b, warmup=3, iters=20, budget_s=10)
    out["gemm_bf16_8192"] = {"median_ms": m["median_ms"], "TFLOP_per_s": 2 * k**3 / (m["median_ms"] * 1e-3) / 1e12}
    del a, b
    free_memory(device)
    return out


def model_counts(model) -> dict:
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())  # tied tensor counted once
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))  # incl. lm_head
    n_linear = sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear))
    return {"params": n_params, "weight_bytes": weight_bytes, "matmul_params": matmul, "linear_modules": n_linear,
            "layers": cfg.num_hidden_layers, "q_dim": cfg.num_attention_heads * cfg.head_dim}


def flops_per_token(counts: dict, seq: int, train: bool) -> dict:
    """6N (train) or 2N (forward) with N = matmul parameters incl. the tied LM head; attention separately (causal:
    on average seq/2 keys per query, QK^T and PV, 2 flops per multiply-add; x3 with backward)."""
    mult = 6 if train else 2
    dense = mult * counts["matmul_params"]
    attn = (3 if train else 1) * 2 * 2 * counts["layers"] * (seq / 2) * counts["q_dim"]
    return {"dense": dense, "attention_causal": attn}


def workload_calib(model, device, clock, a) -> dict:
    vocab = model.config.vocab_size
    ids = torch.tensor(lehmer_ids(a.calib_batch * a.seq, vocab, SEED_CALIB), dtype=torch.long,
                       device=device).view(a.calib_batch, a.seq)
    amax: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(module, args, output):
            local = args[0].detach().abs().amax()
            prev = amax.get(name)
            amax[name] = local if prev is None else torch.maximum(prev, local)
        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    try:
        model.eval()

        def step():
            with torch.no_grad():
                model(input_ids=ids, use_cache=False)

        peak_reset(device)
        m = measure(clock, step, a.warmup, a.calib_iters, a.budget_calib)
        tokens = a.calib_batch * a.seq
        res = {"batch": a.calib_batch, "seq": a.seq, "tokens_per_iter": tokens, **m,
               "tokens_per_s": tokens / (m["median_ms"] * 1e-3), "peak_bytes": peak_bytes(device),
               "hooks": len(handles), "amax_dtype": str(next(iter(amax.values())).dtype) if amax else None,
               "amax": {k: float(v) for k, v in amax.items()}}
        return res
    finally:
        for h in handles:
            h.remove()
        del ids, amax
        free_memory(device)


def workload_decode(model, device, clock, a) -> dict:
    vocab = model.config.vocab_size
    prompt = torch.tensor([lehmer_ids(a.prompt_len, vocab, SEED_PROMPT)], dtype=torch.long, device=device)
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    pad = eos if eos is not None else 0
    model.eval()

    def gen(n):
        with torch.no_grad():
            out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                                 min_new_tokens=n, do_sample=False, num_beams=1, pad_token_id=pad, use_cache=True)
        return out if torch.is_tensor(out) else out.sequences

    peak_reset(device)
    t0 = time.perf_counter()
    # warm-up at the timed length: kernels, cache classes, generation config. (A 16-token warm-up left the first
    # 256-token run 3-4x slower than the others on the H200, 2026-11-29, and the report flagged every decode
    # ratio unstable.)
    gen(a.new_tokens)
    clock.sync()
    warm_s = time.perf_counter() - t0
    runs = []
    tokens = None
    t1 = time.perf_counter()
    for r in range(max(1, a.decode_runs)):
        # start another run only if one more (as long as the last) still fits the budget
        if r > 0 and time.perf_counter() - t1 + runs[-1] > a.budget_decode:
            break
        clock.sync()
        s = time.perf_counter()
        out = gen(a.new_tokens)
        clock.sync()
        dt = time.perf_counter() - s
        new = out.shape[1] - prompt.shape[1]
        if new != a.new_tokens:
            raise RuntimeError(f"generate() returned {new} new tokens, expected {a.new_tokens}")
        if tokens is None:
            tokens = [int(t) for t in out[0, prompt.shape[1]:].tolist()]
        runs.append(dt)
    med = statistics.median(runs)
    return {"batch": 1, "prompt_len": prompt.shape[1], "new_tokens": a.new_tokens, "timing": "wall clock, synchronized",
            "warmup_s": warm_s, "runs": len(runs), "times_s": [round(r, 4) for r in runs], "median_s": med,
            "tokens_per_s": a.new_tokens / med, "ms_per_token": med / a.new_tokens * 1e3,
            "peak_bytes": peak_bytes(device), "prompt": prompt[0].tolist(), "generated": tokens}


def workload_train(model, device, clock, a, counts, ceil) -> dict:
    vocab = model.config.vocab_size
    ids = torch.tensor(lehmer_ids(a.train_batch * a.seq, vocab, SEED_TRAIN), dtype=torch.long,
                       device=device).view(a.train_batch, a.seq)
    model.train()
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=False)
    losses: list[torch.Tensor] = []

    def step():
        out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.detach())

    try:
        peak_reset(device)
        m = measure(clock, step, a.warmup, a.train_iters, a.budget_train)
        tokens = a.train_batch * a.seq
        tps = tokens / (m["median_ms"] * 1e-3)
        fl = flops_per_token(counts, a.seq, train=True)
        res = {"batch": a.train_batch, "seq": a.seq, "tokens_per_iter": tokens, **m, "tokens_per_s": tps,
               "peak_bytes": peak_bytes(device), "first_loss": float(losses[0]), "last_loss": float(losses[-1]),
               "optimizer": "torch.optim.AdamW(lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=False, foreach=None)",
               "optimizer_state_dtype": str(next(iter(opt.state.values()))["exp_avg"].dtype) if opt.state else None,
               "param_dtype": str(params[0].dtype), "grad_dtype": "bfloat16 (same as the parameters)",
               "flops_per_token": fl,
               "model_TFLOP_per_s_6N": tps * fl["dense"] / 1e12,
               "model_TFLOP_per_s_6N_plus_attn": tps * (fl["dense"] + fl["attention_causal"]) / 1e12}
        res["mfu_6N_vs_datasheet"] = res["model_TFLOP_per_s_6N"] / DATASHEET_BF16_TFLOPS
        g = (ceil or {}).get("gemm_bf16_8192", {}).get("TFLOP_per_s")
        if g:
            res["mfu_6N_vs_measured_gemm"] = res["model_TFLOP_per_s_6N"] / g
        return res
    finally:
        opt.zero_grad(set_to_none=True)
        del opt, ids, losses
        for p in params:
            p.requires_grad_(False)
        model.eval()
        free_memory(device)


def main() -> None:
    ap = argparse.ArgumentParser(description="PyTorch baseline for issue #3 (see the module docstring)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--calib-batch", type=int, default=8)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--calib-iters", type=int, default=10)
    ap.add_argument("--train-iters", type=int, default=10)
    ap.add_argument("--decode-runs", type=int, default=5)
    ap.add_argument("--budget-calib", type=float, default=30.0, help="seconds of timed runs before stopping early")
    ap.add_argument("--budget-train", type=float, default=30.0)
    ap.add_argument("--budget-decode", type=float, default=60.0)
    ap.add_argument("--workloads", default="calib,decode,train")
    a = ap.parse_args()

    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("pytorch_baseline: CUDA is not available", file=sys.stderr)
        sys.exit(1)
    clock = Clock(device)
    def read_setting(fn):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                v = fn()
            return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
        except Exception as e:  # noqa: BLE001  (torch >= 2.9 may refuse to mix its legacy and new TF32 APIs)
            return f"unreadable: {e}"

    tf32 = {"float32_matmul_precision": read_setting(torch.get_float32_matmul_precision),
            "cuda.matmul.allow_tf32": read_setting(lambda: bool(torch.backends.cuda.matmul.allow_tf32)),
            "cudnn.allow_tf32": read_setting(lambda: bool(torch.backends.cudnn.allow_tf32))}
    result: dict = {
        "framework": "pytorch",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "cuda": torch.version.cuda},
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device), "timing": clock.method, "dtype": "bfloat16", "tf32_defaults": tf32,
        "settings": {k: v for k, v in vars(a).items() if k not in ("json",)},
        "workloads": {},
    }

    def write() -> None:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, a.json)

    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    try:
        result["ceilings"] = ceilings(device, clock)
    except Exception as e:  # noqa: BLE001
        result["ceilings"] = err(e)
    write()

    t0 = time.perf_counter()
    try:
        model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).to(device).eval()
    except Exception as e:  # noqa: BLE001
        result["load_error"] = err(e)
        for w in a.workloads.split(","):
            result["workloads"][w] = {"error": "model did not load: " + result["load_error"]["error"]}
        write()
        print(f"pytorch_baseline: model did not load: {e}", file=sys.stderr)
        sys.exit(1)
    result["load_s"] = time.perf_counter() - t0
    result["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    counts = model_counts(model)
    result["model"] = dict(counts, path=os.path.abspath(a.model), param_dtype=str(next(model.parameters()).dtype))
    bw = (result.get("ceilings") or {}).get("copy", {}).get("GB_per_s")
    if bw:
        result["hbm_floor_decode_tokens_per_s"] = bw * 1e9 / counts["weight_bytes"]
    write()

    for w in a.workloads.split(","):
        w = w.strip()
        print(f"pytorch_baseline: {w} ...", flush=True)
        try:
            if w == "calib":
                r = workload_calib(model, device, clock, a)
                fl = flops_per_token(counts, a.seq, train=False)
                r["model_TFLOP_per_s_2N"] = r["tokens_per_s"] * fl["dense"] / 1e12
            elif w == "decode":
                r = workload_decode(model, device, clock, a)
            elif w == "train":
                r = workload_train(model, device, clock, a, counts, result.get("ceilings"))
            else:
                r = {"error": f"unknown workload {w!r}"}
        except Exception as e:  # noqa: BLE001
            r = err(e)
            traceback.print_exc()
            free_memory(device)
        result["workloads"][w] = r
        write()
        if "error" in r:
            print(f"  {w}: ERROR {r['error']}", flush=True)
        else:
            print(f"  {w}: {r['tokens_per_s']:,.1f} tok/s", flush=True)

    # table
    print()
    print(f"PyTorch {torch.__version__} / transformers {transformers.__version__} on {result['gpu'] or device}, "
          f"bf16, attention={result['attn_implementation']}, timing={clock.method}")
    c = result.get("ceilings") or {}
    if "copy" in c:
        print(f"  copy bandwidth {c['copy']['GB_per_s']:,.0f} GB/s, bf16 GEMM {c['gemm_bf16_8192']['TFLOP_per_s']:,.0f} TFLOP/s, "
              f"weights {counts['weight_bytes'] / 1e9:.3f} GB -> decode floor {result.get('hbm_floor_decode_tokens_per_s', 0):,.0f} tok/s")
    print(f"  {'workload':<8} {'tok/s':>12} {'median':>12} {'runs':>5} {'peak GiB':>9}  note")
    for w, r in result["workloads"].items():
        if "error" in r:
            print(f"  {w:<8} {'ERROR':>12}  {r['error'][:100]}")
            continue
        med = f"{r['median_ms']:.2f} ms" if "median_ms" in r else f"{r['median_s']:.3f} s"
        runs = r.get("iters", r.get("runs"))
        pk = f"{r['peak_bytes'] / 2**30:.1f}" if r.get("peak_bytes") else "-"
        note = ""
        if w == "train":
            note = f"MFU(6N) {r.get('mfu_6N_vs_measured_gemm', float('nan')):.1%} of measured GEMM, " \
                   f"{r['mfu_6N_vs_datasheet']:.1%} of {DATASHEET_BF16_TFLOPS:.0f} TF; loss {r['first_loss']:.3f}"
        print(f"  {w:<8} {r['tokens_per_s']:>12,.1f} {med:>12} {runs:>5} {pk:>9}  {note}")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
