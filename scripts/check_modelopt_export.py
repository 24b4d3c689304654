#!/usr/bin/env python3
"""PyTorch check of mopt's Model Optimizer checkpoints (issue #5): loads an exported checkpoint with
safetensors + transformers, dequantizes every quantized Linear per ../shared/docs/formats.md (written here
from the doc, not from mopt's code), simulates the activation quantizers with forward pre-hooks
(pre_quant_scale, then FP8 / INT8 static, NVFP4 dynamic blocks with the calibrated global scale, MXFP8
dynamic blocks), runs the model in float32 on the token ids of IDS and compares its logits with mopt's
(`mopt forward --model CKPT --ids-file IDS --out LOGITS`, computed beforehand). MIXED_PRECISION checkpoints
take each Linear's quant_algo from quantized_layers. W4A8_AWQ weights are the INT4 groups (as W4A16_AWQ) then
an FP8 per-tensor round trip with weight_scale_2 (docs/export.md). A Linear with an input_scale but no
weight_scale (mopt's W4A8 down_proj whose in dim the INT4 groups do not fit) keeps a float weight and gets the
checkpoint's activation quantizer.

    python3 scripts/check_modelopt_export.py CKPT IDS.npy|IDS.json MOPT_LOGITS.npy [--json OUT.json] [--linear-io DIR [--table]]

KV-cache quantization (k_scale / v_scale) is not simulated: check checkpoints exported without --kv-cache.
Prints the relative logits error ||torch - mopt|| / ||torch|| and exits 1 above the tolerance (1e-4 for
weight-only formats, 2e-2 where activations are quantized: a value on a rounding boundary may round the
other way in a differently ordered float32 computation).

--linear-io DIR (mopt's record of every Linear's x / in / w / y from scripts/dump-linear-io.mjs, which
scripts/export-check-inputs.sh writes) adds the per-Linear check, which then decides the exit status: each
Linear module, with its forward pre-hook, is called on mopt's x, and its quantized input and weight must equal
mopt's element for element and its output match to 1e-5 relative (compare_linear_io). The end-to-end error is
reported next to it, with the number of activations that round differently in a teacher-forced forward (each
Linear's output replaced by its output on mopt's input): threshold crossings of float32 rounding."""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

E2M1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=torch.float32)


def e2m1_values(nibbles):
    mag = E2M1[(nibbles & 7).long()]
    return torch.where((nibbles & 8) != 0, -mag, mag)


def e2m1_round(x):
    """Nearest E2M1 value, ties to the even code (formats.md thresholds)."""
    a = x.abs()
    codes = torch.bucketize(a, torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]), right=False)
    # bucketize puts a tie in the lower bucket; the ties .75 / 1.75 / 3.5 go up to the even code
    ties_up = (a == 0.75) | (a == 1.75) | (a == 3.5)
    codes = torch.where(ties_up, codes + 1, codes).clamp(max=7)
    return torch.sign(x) * E2M1[codes]


def unpack_low_first(packed, cols):
    lo = packed & 0xF
    hi = packed >> 4
    return torch.stack([lo, hi], dim=-1).reshape(packed.shape[0], cols)


# the activation quantizer of each quant_algo (weight-only ones have none)
ACT_KIND = {"FP8": "FP8", "W8A8_SQ_PER_CHANNEL": "INT8", "W4A8_AWQ": "FP8", "NVFP4": "NVFP4", "NVFP4_AWQ": "NVFP4", "MXFP8": "MXFP8", "MXFP4": "MXFP4"}


def fp8_qdq(x, scale):
    """FP8 E4M3 per tensor: x / scale clamped to +-448, cast with round to nearest even, times scale."""
    return (x / scale).clamp(-448, 448).to(torch.float8_e4m3fn).float() * scale


def int4_groups(w, s, out, inp):
    """INT4 packed along the output dim (row 2j low nibble, 2j+1 high, two's complement) times its group scales."""
    lo = (w & 0xF).to(torch.int16)
    hi = (w >> 4).to(torch.int16)
    lo = torch.where(lo > 7, lo - 16, lo)
    hi = torch.where(hi > 7, hi - 16, hi)
    q = torch.stack([lo, hi], dim=1).reshape(out, inp).float()
    g = inp // s.shape[1]
    return q * s.float().repeat_interleave(g, dim=1)


def dequantize(algo, t, name, shape):
    w = t[name + ".weight"]
    s = t[name + ".weight_scale"]
    out, inp = shape
    if algo == "FP8":
        return w.float() * s.float()
    if algo == "W8A8_SQ_PER_CHANNEL":
        return w.float() * s.float()[:, None]
    if algo == "W4A16_AWQ":
        return int4_groups(w, s, out, inp)
    if algo == "W4A8_AWQ":
        # weight_scale is the INT4 stage's own (not divided by weight_scale_2); the FP8 stage runs on its output
        return fp8_qdq(int4_groups(w, s, out, inp), t[name + ".weight_scale_2"].float())
    if algo in ("NVFP4", "NVFP4_AWQ", "W4A16_NVFP4"):
        vals = e2m1_values(unpack_low_first(w, inp))
        block = s.view(torch.float8_e4m3fn).float() * t[name + ".weight_scale_2"].float()
        return vals * block.repeat_interleave(16, dim=1)
    if algo == "MXFP8":
        scale = torch.pow(2.0, s.float() - 127)
        return w.view(torch.float8_e4m3fn).float() * scale.repeat_interleave(32, dim=1)
    if algo == "MXFP4":
        scale = torch.pow(2.0, s.float() - 127)
        return e2m1_values(unpack_low_first(w, inp)) * scale.repeat_interleave(32, dim=1)
    raise SystemExit(f"{algo}: not covered by this check")


def act_quantizer(kind, t, name):
    """pre_quant_scale, then the activation quantizer `kind` (None: smoothing only)."""
    pqs = t.get(name + ".pre_quant_scale")
    scale = t.get(name + ".input_scale")

    def q(x):
        if pqs is not None:
            x = x * pqs.float()
        if kind == "FP8":
            return fp8_qdq(x, scale)
        if kind == "INT8":
            return torch.round(x / scale).clamp(-128, 127) * scale
        if kind == "NVFP4":
            s2 = scale.float()
            xb = x.reshape(*x.shape[:-1], -1, 16)
            bs = (xb.abs().amax(-1, keepdim=True) / (6 * s2)).clamp(max=448).to(torch.float8_e4m3fn).float()
            div = bs * s2
            y = torch.where(div > 0, e2m1_round(xb / torch.where(div > 0, div, torch.ones_like(div))) * div, torch.zeros_like(xb))
            return y.reshape(x.shape)
        if kind == "MXFP8":
            xb = x.reshape(*x.shape[:-1], -1, 32)
            amax = xb.abs().amax(-1, keepdim=True)
            e = torch.ceil(torch.log2(torch.where(amax > 0, amax / 448, torch.ones_like(amax)))).clamp(-127, 127)
            sc = torch.pow(2.0, e)
            return ((xb / sc).to(torch.float8_e4m3fn).float() * sc).reshape(x.shape)
        if kind == "MXFP4":
            xb = x.reshape(*x.shape[:-1], -1, 32)
            amax = xb.abs().amax(-1, keepdim=True)
            e = torch.ceil(torch.log2(torch.where(amax > 0, amax / 6, torch.ones_like(amax)))).clamp(-127, 127)
            sc = torch.pow(2.0, e)
            return (e2m1_round(xb / sc) * sc).reshape(x.shape)
        return x

    return q


from linear_io_check import PER_LINEAR_TOL, compare_linear_io, print_linear_table, read_linear_io, recorded_linears, run_on_mopt_inputs, verdict  # noqa: E402  (scripts/ is on sys.path: the scripts run from there)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("ids")
    ap.add_argument("mopt_logits")
    ap.add_argument("--json")
    ap.add_argument("--linear-io", help="mopt's per-Linear record (scripts/dump-linear-io.mjs): check every Linear on mopt's inputs")
    ap.add_argument("--table", action="store_true", help="with --linear-io: print the per-Linear table on stderr")
    a = ap.parse_args()
    hq = json.load(open(os.path.join(a.ckpt, "hf_quant_config.json")))["quantization"]
    algo = hq["quant_algo"]
    layers = hq.get("quantized_layers", {}) if algo == "MIXED_PRECISION" else None
    if algo == "MIXED_PRECISION" and not layers:
        raise SystemExit("MIXED_PRECISION without quantized_layers")
    if hq.get("kv_cache_quant_algo"):
        raise SystemExit("KV-cache quantization is not simulated here: export without --kv-cache for this check")
    files = [f for f in os.listdir(a.ckpt) if f.endswith(".safetensors")]
    t = {}
    for f in files:
        t.update(load_file(os.path.join(a.ckpt, f)))
    cfg = AutoConfig.from_pretrained(a.ckpt)
    cfg.quantization_config = None
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    sd = {}
    scales = (".weight_scale", ".weight_scale_2", ".input_scale", ".pre_quant_scale")
    quantized = sorted({k[: -len(".weight_scale")] for k in t if k.endswith(".weight_scale")})
    hooked = sorted({k.rsplit(".", 1)[0] for k in t if k.endswith((".input_scale", ".pre_quant_scale"))})
    if layers is not None and sorted(layers) != quantized:
        raise SystemExit(f"quantized_layers {sorted(set(layers) ^ set(quantized))[:5]} disagree with the weight_scale tensors")
    layer_algo = lambda name: layers[name]["quant_algo"] if layers is not None else algo
    for k, v in t.items():
        if k.endswith(scales) or any(k == q + ".weight" for q in quantized):
            continue
        sd[k] = v.float()
    modules = dict(model.named_modules())
    for q in quantized:
        sd[q + ".weight"] = dequantize(layer_algo(q), t, q, tuple(modules[q].weight.shape))
    # every Linear's raw input, input after the quantizer pre-hook and output on each call (the recording
    # pre-hook runs before the quantizer's: prepend); a teacher-forced forward replaces each output by `teacher`
    seen_x, seen_in, state = {}, {}, {"teacher": None}

    def record_x(name):
        return lambda m, args: seen_x.__setitem__(name, args[0].detach())

    def record_in_out(name):
        def hook(m, args, out):
            seen_in[name] = args[0].detach()
            if state["teacher"] is not None:
                return torch.from_numpy(state["teacher"][name]).to(out.dtype)
        return hook

    act_quantized = set()
    for q in hooked:
        if q + ".input_scale" in t and q not in quantized and layers is not None:
            raise SystemExit(f"{q}: input_scale without weight_scale in a MIXED_PRECISION checkpoint")
        kind = ACT_KIND.get(layer_algo(q)) if q + ".input_scale" in t or layer_algo(q) in ("MXFP8", "MXFP4") else None
        if kind is not None:
            act_quantized.add(q)
        fq = act_quantizer(kind, t, q)
        modules[q].register_forward_pre_hook(lambda m, args, fq=fq: (fq(args[0]),))
    for q in quantized:
        if q not in hooked and layer_algo(q) in ("MXFP8", "MXFP4"):  # dynamic: no input_scale, still quantized
            act_quantized.add(q)
            fq = act_quantizer(layer_algo(q), t, q)
            modules[q].register_forward_pre_hook(lambda m, args, fq=fq: (fq(args[0]),))
    activation_quantized = len(act_quantized) > 0
    if a.linear_io:
        for name, m in modules.items():
            if isinstance(m, torch.nn.Linear):
                m.register_forward_pre_hook(record_x(name), prepend=True)
                m.register_forward_hook(record_in_out(name))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    ids = torch.tensor(json.load(open(a.ids)), dtype=torch.int64) if a.ids.endswith(".json") else torch.from_numpy(np.load(a.ids).astype(np.int64))
    if ids.dim() == 1:
        ids = ids[None]
    with torch.no_grad():
        ref = model(ids).logits.float()
    got = torch.from_numpy(np.load(a.mopt_logits)).float()
    err = float((ref - got).norm() / ref.norm())
    tol = 2e-2 if activation_quantized else 1e-4
    io = None
    if a.linear_io:
        free = {n: v.numpy() for n, v in seen_in.items()}

        def run_linear(name, x):
            """the module itself on mopt's x: its quantizer pre-hook, then its (dequantized) weight"""
            with torch.no_grad():
                y = modules[name](torch.from_numpy(np.ascontiguousarray(x)).float())
            return y.numpy(), seen_in[name].numpy(), modules[name].weight.detach().numpy()

        own = run_on_mopt_inputs(a.linear_io, sorted(free), run_linear)
        state["teacher"] = {n: v[0] for n, v in own.items()}
        with torch.no_grad():
            model(ids)
        state["teacher"] = None
        io = compare_linear_io(a.linear_io, own, act_quantized, {n: (seen_x[n].numpy(), seen_in[n].numpy()) for n in own}, free)
    res = verdict({"checkpoint": a.ckpt, "quant_algo": algo, "quantized_linears": len(quantized)}, err, tol, io)
    if io is not None and a.table:
        print_linear_table(io)
    print(json.dumps(res))
    if a.json:
        json.dump(res if io is None else {**res, "linears": io["per_linear"]}, open(a.json, "w"))
    sys.exit(0 if res["ok"] else 1)


if __name__ == "__main__":
    main()
