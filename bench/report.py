#!/usr/bin/env python3
"""Merge pytorch_baseline.py's and mopt_bench.js's JSON into one markdown report (issue #3's benchmark).

    python3 bench/report.py --pytorch $OUT/pytorch.json --mopt $OUT/mopt.json --out $OUT/benchmarks.md \
        [--command "bash bench/run.sh"] [--log-note TEXT]

Prints the markdown and writes it to --out. Standard library only. A missing or unreadable JSON, or a workload
recorded as {"error": ...}, shows as an error in the table instead of stopping the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import statistics
import subprocess

# mopt's targets and the PyTorch numbers in docs/architecture.md ("Targets", measured on an H200).
# The descriptions' sizes are filled in from the JSON (the defaults are the architecture doc's sizes).
ROWS = [
    ("calib", "max-calibration forward (per-Linear amax hooks), bf16, {calib_batch} x {seq} tokens", 200_000, 158_408),
    ("train", "training step: fwd + bwd + AdamW, bf16, {train_batch} x {seq} tokens", 55_000, 49_295),
    ("decode", "batch-1 greedy decode, {new_tokens} new tokens after a {prompt_len}-token prompt", 1_300, 13.7),
]
SIZES = {"calib_batch": 8, "train_batch": 4, "seq": 2048, "new_tokens": 256, "prompt_len": 16}


def sizes_of(d: dict) -> dict:
    """Workload sizes from a result's settings (snake_case in Python's JSON, camelCase in mopt's)."""
    s = d.get("settings") or {}
    out = {}
    for k, default in SIZES.items():
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), k)
        out[k] = s.get(k, s.get(camel, default))
    return out


def load(path: str) -> tuple[dict, str | None]:
    if not path or not os.path.isfile(path):
        return {}, f"{path or '(none)'} was not written"
    try:
        with open(path) as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return {}, f"{path} is unreadable: {e}"


def gpu_from_smi() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        return None
    name, *rest = [x.strip() for x in lines[0].split(",")]
    extra = f" (driver {rest[0]}, {rest[1]})" if len(rest) >= 2 else ""
    return f"{len(lines)} x {name}{extra}" if len(lines) > 1 else f"{name}{extra}"


def fmt_num(x, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if abs(x) < 100 and digits == 0:
        return f"{x:,.1f}"
    return f"{x:,.{digits}f}"


def gib(x) -> str:
    return f"{x / 2**30:.1f} GiB" if isinstance(x, (int, float)) and x else "–"


def peak(w: dict) -> str:
    if w.get("peak_bytes"):
        return gib(w["peak_bytes"])
    if w.get("peak_bytes_at_most"):  # mopt's allocator peak did not rise during this workload
        return "≤ " + gib(w["peak_bytes_at_most"])
    return "–"


def workload(d: dict, name: str) -> dict:
    w = (d.get("workloads") or {}).get(name)
    return w if isinstance(w, dict) else {"error": "not run"}


def cell(w: dict) -> str:
    if "error" in w:
        msg = str(w["error"]).replace("|", "\\|").replace("\n", " ")
        return f"error: {msg[:120]}"
    s = fmt_num(w.get("tokens_per_s"))
    t = w.get("truncated_by_budget")
    if t:
        s += "*" if isinstance(t, dict) or t is True else ""
    return s


def amax_agreement(pt: dict, mo: dict) -> str | None:
    pa = workload(pt, "calib").get("amax")
    ma = workload(mo, "calib").get("amax")
    if not isinstance(pa, dict) or not isinstance(ma, dict):
        return None
    rel = []
    for k, v in pa.items():
        mk = "model.embed_tokens" if k == "lm_head" and "lm_head" not in ma else k
        if mk in ma and isinstance(ma[mk], (int, float)) and v:
            rel.append(abs(ma[mk] - v) / abs(v))
    if not rel:
        return "no Linear names in common"
    return (f"{len(rel)} of {len(pa)} Linears compared: median relative difference {statistics.median(rel):.2e}, "
            f"max {max(rel):.2e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pytorch", required=True)
    ap.add_argument("--mopt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", action="append", default=[], help="command line(s) of this run, shown verbatim")
    ap.add_argument("--mopt-exit", type=int, default=None, help="mopt_bench's exit status (124/137: killed by timeout)")
    ap.add_argument("--mopt-timeout", type=int, default=None, help="the timeout it ran under, seconds")
    args = ap.parse_args()

    pt, pt_err = load(args.pytorch)
    mo, mo_err = load(args.mopt)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    gpu = gpu_from_smi() or pt.get("gpu") or mo.get("gpu") or "unknown GPU"
    v = pt.get("versions") or {}
    ceil = pt.get("ceilings") or {}
    copy_bw = (ceil.get("copy") or {}).get("GB_per_s")
    gemm = (ceil.get("gemm_bf16_8192") or {}).get("TFLOP_per_s")
    model = pt.get("model") or mo.get("model") or {}

    psz, msz = sizes_of(pt), sizes_of(mo)
    killed = args.mopt_exit in (124, 137)
    L = []
    L.append(f"## {now} — {gpu}")
    L.append("")
    L.append(f"Model: random-weight Llama-3.2-1B shape (`bench/make_llama1b.py`), "
             f"{model.get('params', 0):,} parameters, {model.get('weight_bytes', 0) / 1e9:.3f} GB of bf16 weights. "
             f"PyTorch {v.get('torch', '?')} / transformers {v.get('transformers', '?')} (CUDA {v.get('cuda', '?')}), "
             f"attention `{pt.get('attn_implementation', '?')}` (transformers' default), no torch.compile, "
             f"TF32 at torch defaults; mopt on Node {((mo.get('versions') or {}).get('node')) or '?'}, "
             f"device `{mo.get('device', '?')}`. Timing: PyTorch {pt.get('timing', '?')}, mopt {mo.get('timing', '?')}; "
             f"median of the timed runs after warm-up; decode is wall time between synchronizations in both.")
    L.append("")
    if copy_bw or gemm:
        floor = pt.get("hbm_floor_decode_tokens_per_s")
        L.append(f"Ceilings measured in the same run: device-to-device copy {fmt_num(copy_bw)} GB/s (read + write), "
                 f"bf16 GEMM 8192³ {fmt_num(gemm)} TFLOP/s. Decode floor set by HBM: "
                 f"{model.get('weight_bytes', 0) / 1e9:.3f} GB / {fmt_num(copy_bw)} GB/s = **{fmt_num(floor)} tok/s**.")
        L.append("")
    L.append("| workload | PyTorch tok/s | mopt tok/s | mopt / PyTorch | mopt target | PyTorch in architecture.md | peak memory PyTorch / mopt |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, desc, target, doc in ROWS:
        p = workload(pt, name) if not pt_err else {"error": pt_err}
        m = workload(mo, name) if not mo_err else {"error": mo_err}
        if killed and "error" in m and m["error"] in ("not run", mo_err):
            m = {"error": f"not finished: mopt_bench was killed by the {args.mopt_timeout or '?'} s timeout"}
        desc = desc.format(**psz)
        if pt and mo and not pt_err and not mo_err and psz != msz:
            desc += f" (sizes differ: PyTorch {psz}, mopt {msz})"
        pr = p.get("tokens_per_s") if "error" not in p else None
        mr = m.get("tokens_per_s") if "error" not in m else None
        ratio = f"{mr / pr:.2f}x" if pr and mr else "–"
        met = ""
        if mr is not None:
            met = " (met)" if mr >= target else " (not met)"
        L.append(f"| {desc} | {cell(p)} | {cell(m)} | {ratio} | ≥ {fmt_num(target)}{met} | {fmt_num(doc)} | "
                 f"{peak(p)} / {peak(m)} |")
    L.append("")
    notes = []
    pt_train, mo_train = workload(pt, "train"), workload(mo, "train")
    for label, w in (("PyTorch", pt_train), ("mopt", mo_train)):
        if "error" not in w and w.get("model_TFLOP_per_s_6N") is not None:
            tf = w["model_TFLOP_per_s_6N"]
            mfu = f", {tf / gemm:.1%} of the measured GEMM rate" if gemm else ""
            notes.append(f"{label} training: {tf:,.0f} TFLOP/s by the 6N convention (N = matmul parameters incl. the "
                         f"tied LM head, attention excluded){mfu}, {w.get('mfu_6N_vs_datasheet', 0):.1%} of 989 TFLOP/s; "
                         f"first-step loss {w.get('first_loss', float('nan')):.4f}.")
    if "error" not in pt_train:
        notes.append(f"PyTorch training setup: {pt_train.get('param_dtype')} parameters and gradients, "
                     f"{pt_train.get('optimizer')} with {pt_train.get('optimizer_state_dtype')} moments "
                     "(torch keeps AdamW state in the parameter dtype; no fp32 master weights), loss = "
                     "transformers' causal-LM cross-entropy (labels = input ids, logits in float32). "
                     "mopt: the same with mopt's AdamW (moments in the parameter dtype) and crossEntropy.")
    agree = amax_agreement(pt, mo)
    if agree:
        notes.append(f"Calibration amax, mopt vs PyTorch on the same token ids: {agree}.")
    pg = workload(pt, "decode").get("generated")
    mg = workload(mo, "decode").get("generated")
    if isinstance(pg, list) and isinstance(mg, list) and pg and mg:
        same = 0
        for x, y in zip(pg, mg):
            if x != y:
                break
            same += 1
        notes.append(f"Greedy tokens: mopt and PyTorch agree on the first {same} of {min(len(pg), len(mg))} "
                     "(random weights: near-ties can split them; a short agreement is not by itself a bug).")
    md = workload(mo, "decode")
    lone = md.get("without_session")
    if isinstance(lone, dict) and "error" not in md:
        notes.append(f"mopt decode calls share a `DecodeSession` (cache, step kernel and recorded prefill kept across calls, "
                     f"as in a serving loop); first token {md.get('first_token_ms', 0):.1f} ms. One call without a session "
                     f"after them: {lone.get('tokens_per_s', 0):,.0f} tok/s, first token {lone.get('first_token_ms', 0):.1f} ms"
                     + (f" ({lone['tokens_per_s'] / workload(pt, 'decode')['tokens_per_s']:.2f}x PyTorch)." if workload(pt, "decode").get("tokens_per_s") else ".")
                     + (f" **The prefill was not recorded** (it ran eagerly): {md['recording_error']}" if md.get("recording_error") else ""))
    for label, d in (("PyTorch", pt), ("mopt", mo)):
        for name, _, _, _ in ROWS:
            w = workload(d, name)
            times = w.get("times_s")
            # a run-to-run spread this large makes the median (of few runs) a poor baseline: say so in the table's notes
            if isinstance(times, list) and len(times) >= 2 and min(times) > 0 and max(times) / min(times) > 1.5:
                notes.append(f"**Unstable:** {label} {name} runs took {min(times):.3g} to {max(times):.3g} s "
                             f"({max(times) / min(times):.1f}x apart over {len(times)} runs); its ratio in the table is not reliable.")
            t = w.get("truncated_by_budget")
            if isinstance(t, dict):
                notes.append(f"\\* {label} {name}: one run did not fit its time budget; rate over "
                             f"{t.get('tokens')} tokens in {t.get('seconds', 0):.1f} s.")
            elif t is True:
                notes.append(f"\\* {label} {name}: {w.get('iters')} timed runs (the time budget cut the count).")
    if pt_err:
        notes.append(f"PyTorch results missing: {pt_err}.")
    if mo_err:
        notes.append(f"mopt results missing: {mo_err}.")
    if args.mopt_exit not in (None, 0):
        notes.append(f"mopt_bench exited with status {args.mopt_exit}"
                     + (" (killed by the timeout)." if killed else " (a workload failed; see the table)."))
    for n in notes:
        L.append(f"- {n}")
    L.append("")
    cmds = list(args.command) or [c for c in (pt.get("command"), mo.get("command")) if c]
    if cmds:
        L.append("Commands:")
        L.append("```")
        L.extend(cmds)
        L.append("```")
        L.append("")
    text = "\n".join(L)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
