#!/usr/bin/env python3
"""CPU-side cross-check of scripts/check_modelopt_export.py (numpy only, no torch / transformers): the same
dequantization per ../shared/docs/formats.md and the same activation quantizers as that script's forward
pre-hooks, on a numpy port of transformers' LlamaForCausalLM forward in float32 (LlamaRMSNorm, default RoPE,
GQA attention, SwiGLU MLP, tied or separate head). The checkpoint is read with its own safetensors parser.

    python3 scripts/check_modelopt_export_numpy.py CKPT IDS.json|IDS.npy MOPT_LOGITS.npy [--json OUT.json] [--dump DIR] [--float64]
        [--linear-io DIR [--table]]

Prints the relative logits error ||numpy - mopt|| / ||numpy|| with the PyTorch script's tolerances (1e-4
weight-only, 2e-2 with activation quantizers). --dump DIR writes every Linear's input x, its input after the
activation quantizer (in), its dequantized weight (w) and output (out) as DIR/<module>.{x,in,w,out}.npy, for a
per-Linear comparison with another implementation. --float64 runs the model's own arithmetic (norms, RoPE,
attention, matmul sums) in float64 while weights and quantizers stay float32: an activation within float32
rounding of a quantizer's threshold (E2M1 .75 between .5 and 1, say) rounds either way depending on how an
implementation orders its float32 sums, and the float64 run shows which side it lies on in exact arithmetic.
--linear-io DIR (mopt's record from scripts/dump-linear-io.mjs) adds the per-Linear check, as in the PyTorch
script and with the same code (compare_linear_io): every Linear of this port on mopt's recorded x must give
mopt's quantized input and weight exactly and its output to 1e-5; that check then decides the exit status, and
the end-to-end error is reported next to it with the activations that round differently (threshold crossings).
Llama-architecture checkpoints only; KV-cache quantization is not simulated (as in the PyTorch script)."""
import argparse
import json
import os
import struct
import sys

import numpy as np

# the compute dtype: float32 as the PyTorch script, or float64 (--float64: the same operations in near-exact
# arithmetic, to tell which side of a rounding boundary an activation really lies on)
F = np.float32
# weights and activation quantizers always compute in float32, on float32 inputs, as the checkpoint's dtype
# (and mopt, and Model Optimizer's fake quant in a float32 model) do: --float64 changes only the model's own
# arithmetic (norms, RoPE, attention, matmul accumulation), where a float32 rounding error can move an
# activation across a quantizer's rounding boundary
Q = np.float32

# ---------------------------------------------------------------- safetensors + element types


def e4m3_table():
    """float value of every float8_e4m3fn code (0x7F / 0xFF are NaN)."""
    v = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 0xF, c & 7
        if e == 15 and m == 7:
            v[c] = np.nan
            continue
        mag = (m / 8) * 2.0**-6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
        v[c] = -mag if s else mag
    return v


E4M3 = e4m3_table()
E4M3_POS = E4M3[:127]  # codes 0..126: 0 .. 448, increasing


def to_e4m3(x):
    """Round to the nearest float8_e4m3fn value, ties to the even code (as torch's .to(float8_e4m3fn));
    callers clamp to +-448 first, as the PyTorch script does."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    hi = np.clip(np.searchsorted(E4M3_POS, a, side="left"), 1, 126)
    lo = hi - 1
    dlo, dhi = a - E4M3_POS[lo], E4M3_POS[hi] - a
    code = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(lo % 2 == 0, lo, hi)))
    code = np.where(a <= 0, 0, code)
    return (np.sign(x) * E4M3_POS[code]).astype(Q)


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f16_to_f32(u16):
    return u16.view(np.float16).astype(np.float32)


ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.uint16, "BF16": np.uint16, "U8": np.uint8, "I8": np.int8,
             "I16": np.int16, "I32": np.int32, "I64": np.int64, "F8_E4M3": np.uint8, "BOOL": np.uint8}


def read_safetensors(path):
    """{name: (safetensors dtype, numpy array of the raw elements)}: F8_E4M3 stays as codes, BF16 / F16 as bits."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = np.dtype(ST_DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = (info["dtype"], np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"]))
    return out


def as_float(st):
    """A tensor as float32 (what the PyTorch script's `.float()` gives)."""
    dtype, a = st
    if dtype == "BF16":
        return bf16_to_f32(a)
    if dtype == "F16":
        return f16_to_f32(a)
    if dtype == "F8_E4M3":
        return E4M3[a].astype(np.float32)
    return a.astype(np.float32)


# ---------------------------------------------------------------- formats.md, as the PyTorch script reads it

E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=Q)
E2M1_BOUNDS = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], dtype=Q)


def e2m1_values(nibbles):
    mag = E2M1[nibbles & 7]
    return np.where((nibbles & 8) != 0, -mag, mag)


def e2m1_round(x):
    """Nearest E2M1 value, ties to the even code (the script's torch.bucketize(right=False) = searchsorted left)."""
    a = np.abs(x)
    codes = np.searchsorted(E2M1_BOUNDS, a, side="left")
    ties_up = (a == Q(0.75)) | (a == Q(1.75)) | (a == Q(3.5))
    codes = np.minimum(np.where(ties_up, codes + 1, codes), 7)
    return (np.sign(x) * E2M1[codes]).astype(Q)


def unpack_low_first(packed, cols):
    return np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(packed.shape[0], cols)


def fp8_qdq(x, scale):
    return (to_e4m3(np.clip(x / scale, -448, 448)) * scale).astype(Q)


def int4_groups(w, s, out, inp):
    lo = (w & 0xF).astype(np.int16)
    hi = (w >> 4).astype(np.int16)
    lo = np.where(lo > 7, lo - 16, lo)
    hi = np.where(hi > 7, hi - 16, hi)
    q = np.stack([lo, hi], axis=1).reshape(out, inp).astype(Q)
    return (q * np.repeat(s, inp // s.shape[1], axis=1)).astype(Q)


def dequantize(algo, t, name, shape):
    w = t[name + ".weight"][1]
    s = as_float(t[name + ".weight_scale"])
    out, inp = shape
    if algo == "FP8":
        return (as_float(t[name + ".weight"]) * s).astype(Q)
    if algo == "W8A8_SQ_PER_CHANNEL":
        return (w.astype(Q) * s[:, None]).astype(Q)
    if algo == "W4A16_AWQ":
        return int4_groups(w, s, out, inp)
    if algo == "W4A8_AWQ":
        return fp8_qdq(int4_groups(w, s, out, inp), as_float(t[name + ".weight_scale_2"]))
    if algo in ("NVFP4", "NVFP4_AWQ", "W4A16_NVFP4"):
        vals = e2m1_values(unpack_low_first(w, inp))
        block = (s * as_float(t[name + ".weight_scale_2"])).astype(Q)
        return (vals * np.repeat(block, 16, axis=1)).astype(Q)
    if algo in ("MXFP8", "MXFP4"):
        scale = np.power(Q(2), s - Q(127)).astype(Q)
        vals = E4M3[w].astype(Q) if algo == "MXFP8" else e2m1_values(unpack_low_first(w, inp))
        return (vals * np.repeat(scale, 32, axis=1)).astype(Q)
    raise SystemExit(f"{algo}: not covered by this check")


ACT_KIND = {"FP8": "FP8", "W8A8_SQ_PER_CHANNEL": "INT8", "W4A8_AWQ": "FP8", "NVFP4": "NVFP4", "NVFP4_AWQ": "NVFP4", "MXFP8": "MXFP8", "MXFP4": "MXFP4"}


def act_quantizer(kind, t, name):
    pqs = as_float(t[name + ".pre_quant_scale"]) if name + ".pre_quant_scale" in t else None
    scale = as_float(t[name + ".input_scale"]) if name + ".input_scale" in t else None

    def q(x):
        if pqs is not None:
            x = (x * pqs).astype(Q)
        if kind == "FP8":
            return fp8_qdq(x, scale)
        if kind == "INT8":
            return (np.clip(np.round(x / scale), -128, 127) * scale).astype(Q)
        if kind == "NVFP4":
            xb = x.reshape(*x.shape[:-1], -1, 16)
            bs = to_e4m3(np.minimum(np.abs(xb).max(-1, keepdims=True) / (Q(6) * scale), 448))
            div = (bs * scale).astype(Q)
            safe = np.where(div > 0, div, Q(1))
            y = np.where(div > 0, e2m1_round((xb / safe).astype(Q)) * div, Q(0))
            return y.reshape(x.shape).astype(Q)
        if kind in ("MXFP8", "MXFP4"):
            emax = Q(448) if kind == "MXFP8" else Q(6)
            xb = x.reshape(*x.shape[:-1], -1, 32)
            amax = np.abs(xb).max(-1, keepdims=True)
            e = np.clip(np.ceil(np.log2(np.where(amax > 0, amax / emax, Q(1)))), -127, 127)
            sc = np.power(Q(2), e).astype(Q)
            r = to_e4m3(xb / sc) if kind == "MXFP8" else e2m1_round((xb / sc).astype(Q))
            return (r * sc).reshape(x.shape).astype(Q)
        return x

    return q


from linear_io_check import PER_LINEAR_TOL, compare_linear_io, print_linear_table, read_linear_io, recorded_linears, run_on_mopt_inputs, verdict  # noqa: E402  (scripts/ is on sys.path: the scripts run from there)


# ---------------------------------------------------------------- transformers' Llama in float32


def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True, dtype=F)
    return (w * (x * (F(1) / np.sqrt(var + F(eps))))).astype(F)


def rope_cos_sin(cfg, seq):
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if rp.get("rope_type", "default") != "default":
        raise SystemExit(f"rope_type {rp.get('rope_type')}: only the default RoPE is ported")
    theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    # LlamaRotaryEmbedding: 1 / base ** (arange(0, dim, 2).float() / dim), all float32
    inv_freq = (F(1) / np.power(F(theta), np.arange(0, dim, 2).astype(F) / F(dim))).astype(F)
    freqs = np.arange(seq).astype(F)[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(F), np.sin(emb).astype(F)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


class Model:
    def __init__(self, cfg, t, linear, dump=None, teacher=None):
        self.cfg, self.t, self.linear, self.dump = cfg, t, linear, dump
        # teacher: module -> output to continue with instead of the Linear's own (mopt's y: a teacher-forced
        # forward, where each Linear's input comes from mopt's Linear outputs through this script's other ops)
        self.teacher = teacher
        self.seen_x, self.seen_in = {}, {}  # module -> its input x, and x after pre_quant_scale / the quantizer

    def lin(self, name, x):
        y, xin, w = self.linear(name, x)
        self.seen_x[name], self.seen_in[name] = x, xin
        if self.teacher is not None:
            y = self.teacher(name).astype(F)
        if self.dump is not None:
            for suffix, a in (("x", x), ("in", xin), ("w", w), ("out", y)):
                np.save(os.path.join(self.dump, f"{name}.{suffix}.npy"), a)
        return y

    def forward(self, ids):
        cfg, t = self.cfg, self.t
        eps = cfg.get("rms_norm_eps", 1e-6)
        nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
        hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
        b, s = ids.shape
        emb = as_float(t["model.embed_tokens.weight"]).astype(F)
        h = emb[ids]
        cos, sin = rope_cos_sin(cfg, s)
        mask = np.triu(np.full((s, s), -np.inf, dtype=F), 1)
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = rms_norm(h, as_float(t[p + "input_layernorm.weight"]), eps)
            q = self.lin(p + "self_attn.q_proj", x).reshape(b, s, nh, hd).transpose(0, 2, 1, 3)
            k = self.lin(p + "self_attn.k_proj", x).reshape(b, s, nkv, hd).transpose(0, 2, 1, 3)
            v = self.lin(p + "self_attn.v_proj", x).reshape(b, s, nkv, hd).transpose(0, 2, 1, 3)
            q = (q * cos + rotate_half(q) * sin).astype(F)
            k = (k * cos + rotate_half(k) * sin).astype(F)
            rep = nh // nkv  # repeat_kv: query head j reads kv head j // rep
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            sc = (q @ k.transpose(0, 1, 3, 2)) * F(hd**-0.5) + mask
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            pr = (sc / sc.sum(-1, keepdims=True)).astype(F)
            a = (pr @ v).transpose(0, 2, 1, 3).reshape(b, s, nh * hd)
            h = (h + self.lin(p + "self_attn.o_proj", a)).astype(F)
            x = rms_norm(h, as_float(t[p + "post_attention_layernorm.weight"]), eps)
            g = self.lin(p + "mlp.gate_proj", x)
            u = self.lin(p + "mlp.up_proj", x)
            act = (g * (F(1) / (F(1) + np.exp(-g)))).astype(F) * u
            h = (h + self.lin(p + "mlp.down_proj", act.astype(F))).astype(F)
        h = rms_norm(h, as_float(t["model.norm.weight"]), eps)
        return self.lin("lm_head", h)  # the tied or separate head, as transformers' lm_head Linear


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("ids")
    ap.add_argument("mopt_logits")
    ap.add_argument("--json")
    ap.add_argument("--dump", help="directory for per-Linear {x,in,w,out}.npy")
    ap.add_argument("--float64", action="store_true", help="compute in float64 instead of the PyTorch script's float32")
    ap.add_argument("--linear-io", help="mopt's per-Linear record (scripts/dump-linear-io.mjs): check every Linear on mopt's inputs")
    ap.add_argument("--table", action="store_true", help="with --linear-io: print the per-Linear table on stderr")
    a = ap.parse_args()
    global F
    F = np.float64 if a.float64 else np.float32
    hq = json.load(open(os.path.join(a.ckpt, "hf_quant_config.json")))["quantization"]
    algo = hq["quant_algo"]
    layers = hq.get("quantized_layers", {}) if algo == "MIXED_PRECISION" else None
    if algo == "MIXED_PRECISION" and not layers:
        raise SystemExit("MIXED_PRECISION without quantized_layers")
    if hq.get("kv_cache_quant_algo"):
        raise SystemExit("KV-cache quantization is not simulated here: export without --kv-cache for this check")
    cfg = json.load(open(os.path.join(a.ckpt, "config.json")))
    if cfg.get("model_type") != "llama":
        raise SystemExit(f"model_type {cfg.get('model_type')}: only Llama is ported")
    t = {}
    for f in sorted(os.listdir(a.ckpt)):
        if f.endswith(".safetensors"):
            t.update(read_safetensors(os.path.join(a.ckpt, f)))
    quantized = sorted({k[: -len(".weight_scale")] for k in t if k.endswith(".weight_scale")})
    hooked = sorted({k.rsplit(".", 1)[0] for k in t if k.endswith((".input_scale", ".pre_quant_scale"))})
    if layers is not None and sorted(layers) != quantized:
        raise SystemExit(f"quantized_layers {sorted(set(layers) ^ set(quantized))[:5]} disagree with the weight_scale tensors")
    layer_algo = lambda name: layers[name]["quant_algo"] if layers is not None else algo
    # the same hook selection as the PyTorch script
    hooks, act_quantized = {}, set()
    for q in hooked:
        if q + ".input_scale" in t and q not in quantized and layers is not None:
            raise SystemExit(f"{q}: input_scale without weight_scale in a MIXED_PRECISION checkpoint")
        kind = ACT_KIND.get(layer_algo(q)) if q + ".input_scale" in t or layer_algo(q) in ("MXFP8", "MXFP4") else None
        if kind is not None:
            act_quantized.add(q)
        hooks[q] = act_quantizer(kind, t, q)
    for q in quantized:
        if q not in hooked and layer_algo(q) in ("MXFP8", "MXFP4"):
            act_quantized.add(q)
            hooks[q] = act_quantizer(layer_algo(q), t, q)
    activation_quantized = len(act_quantized) > 0
    weights = {}

    def weight(name, inp):
        if name not in weights:
            if name in quantized:
                ws = t[name + ".weight_scale"][1]  # [out, ...] except FP8's per-tensor scalar
                out = ws.shape[0] if ws.ndim > 0 else t[name + ".weight"][1].shape[0]
                weights[name] = dequantize(layer_algo(name), t, name, (out, inp))
            elif name == "lm_head" and (cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in t):
                weights[name] = as_float(t["model.embed_tokens.weight"])
            else:
                weights[name] = as_float(t[name + ".weight"])
        return weights[name]

    def linear(name, x):
        xin = hooks[name](x.astype(np.float32)).astype(F) if name in hooks else x
        w = weight(name, x.shape[-1]).astype(F)
        return (xin @ w.T).astype(F), xin, w

    if a.dump:
        os.makedirs(a.dump, exist_ok=True)
    ids = np.array(json.load(open(a.ids)), dtype=np.int64) if a.ids.endswith(".json") else np.load(a.ids).astype(np.int64)
    if ids.ndim == 1:
        ids = ids[None]
    model = Model(cfg, t, linear, a.dump)
    ref = model.forward(ids).astype(np.float64)
    got = np.load(a.mopt_logits).astype(np.float64)
    err = float(np.linalg.norm(ref - got) / np.linalg.norm(ref))
    tol = 2e-2 if activation_quantized else 1e-4
    io = None
    if a.linear_io:
        # per Linear: mopt's recorded x through the same `linear` the forward above used; then a teacher-forced
        # forward (each Linear's output its y on mopt's x) for the activations that cross a threshold first-hand
        own = run_on_mopt_inputs(a.linear_io, sorted(model.seen_in), linear)
        forced = Model(cfg, t, linear, teacher=lambda name: own[name][0])
        forced.forward(ids)
        io = compare_linear_io(a.linear_io, own, act_quantized, {n: (forced.seen_x[n], forced.seen_in[n]) for n in forced.seen_in}, model.seen_in)
    res = verdict({"checkpoint": a.ckpt, "dtype": np.dtype(F).name, "quant_algo": algo, "quantized_linears": len(quantized)}, err, tol, io)
    if io is not None and a.table:
        print_linear_table(io)
    print(json.dumps(res))
    if a.json:
        json.dump(res if io is None else {**res, "linears": io["per_linear"]}, open(a.json, "w"))
    sys.exit(0 if res["ok"] else 1)


if __name__ == "__main__":
    main()
