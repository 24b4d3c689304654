#!/usr/bin/env python3
"""Build tiny random-weight Hugging Face causal LMs and reference outputs for mopt's parity tests.

For every case this writes, into <out>/<case>/:

  config.json, generation_config.json, model.safetensors   (model.save_pretrained)
  input_ids.npy   int64   [2, L]          random token ids (L = 12, or 24 for the linear/yarn RoPE cases)
  logits.npy      float32 [2, L, vocab]   model(input_ids).logits, float32, CPU, eager attention
  greedy.json     {"prompt": 6 ids, "new_tokens": 16 ids from model.generate(do_sample=False), ...}
  fixture.json    case name, description, the config passed and the config.json written, RoPE tables, ...

Requirements: Python 3, torch, transformers >= 5 (written against 5.17), numpy. No network is used.

    python3 scripts/make_hf_fixtures.py --out test/fixtures/hf

Exits non-zero (after trying every case) if anything failed.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import logging
import math
import os
import platform
import shutil
import struct
import sys
import traceback

# Never touch the network: everything here is built locally and reloaded from a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

SEED = 1234
VOCAB = 128
HIDDEN = 64
LAYERS = 2
INTERMEDIATE = 96
MAX_POS = 64
BATCH = 2
PROMPT_LEN = 6
NEW_TOKENS = 16
SIZE_BUDGET = 200 * 1024  # bytes; the brief's target for model.safetensors (see README for why fp32 exceeds it)

# Weight scheme (see init_weights): every parameter is re-drawn, so transformers' own init does not matter.
EMBED_STD_UNTIED = 1.0
EMBED_STD_TIED = 0.5          # tied: the embedding is also the LM head, keep logits at a few units
LM_HEAD_GAIN = 3.0            # untied lm_head std = LM_HEAD_GAIN / sqrt(hidden): logits std ~3
QK_GAIN = 1.5                 # q/k projections a bit hotter so attention is peaked and RoPE errors show
BIAS_STD = 1.0                # qwen2 q/k/v biases: large enough to matter
NORM_LOW, NORM_HIGH = 0.5, 1.5  # RMSNorm weights (incl. q_norm/k_norm) uniform around 1


def base_kwargs(**overrides):
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=MAX_POS,
        hidden_act="silu",
        # No special tokens: generation must never stop early on an EOS, and the model's
        # generation_config (which generate() falls back to for unset values) must not carry one.
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        use_cache=True,
    )
    kw.update(overrides)
    return kw


# Each case: model class name, description, config kwargs (transformers v5 style: RoPE lives in
# `rope_parameters`, which holds `rope_type` and `rope_theta` plus the scaling keys), sequence length.
CASES = [
    dict(
        name="llama-gqa",
        cls="LlamaForCausalLM",
        description="Llama, GQA (4 query heads, 2 kv heads, head_dim 16), default RoPE theta 1e4, untied "
        "lm_head, rms_norm_eps 1e-5 (non-default).",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        seq_len=12,
        # 1e-5 vs 1e-6 only moves the logits by ~1e-4 (activations are O(1)): a tight-tolerance check.
        ablations={"rms_norm_eps 1e-6": {"rms_norm_eps": 1e-6, "min_diff": 1e-5}},
    ),
    dict(
        name="llama3-rope",
        cls="LlamaForCausalLM",
        description="Llama with llama3 (Llama 3.1) RoPE scaling: factor 8, low_freq_factor 1, high_freq_factor 4, "
        "original_max_position_embeddings 48, theta 5e5; explicit head_dim 32 (hidden/heads would be 16); "
        "MQA (1 kv head); tied embeddings. original_max_position_embeddings=48 (not 8) so that with head_dim 32 "
        "and theta 5e5 each llama3 branch is hit: 1 frequency kept (wavelen < 12), 2 smoothed "
        "(12 <= wavelen <= 48), 13 divided by 8 (see fixture.json rope.llama3_bands).",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=32,
            tie_word_embeddings=True,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 48,
            },
        ),
        seq_len=12,
        ablations={
            "no llama3 scaling": {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}},
            "rope_theta 1e4": {"rope_parameters": {
                "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 48}},
        },
    ),
    dict(
        name="llama-linear-rope",
        cls="LlamaForCausalLM",
        description="Llama as llama-gqa (4 heads, 2 kv heads, head_dim 16, untied) with linear RoPE scaling "
        "factor 2 (inv_freq / 2), theta 1e4, default rms_norm_eps 1e-6; sequence length 24.",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
        ),
        seq_len=24,
        ablations={"no linear scaling": {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}},
    ),
    dict(
        name="llama-yarn-rope",
        cls="LlamaForCausalLM",
        description="Llama with YaRN RoPE: factor 4, original_max_position_embeddings 16 (max_position_embeddings "
        "64 = 4 * 16), theta 1e4, beta_fast/beta_slow/mscale/attention_factor left to transformers' defaults "
        "(beta_fast 32, beta_slow 1, truncate true, attention_factor = 0.1*ln(4)+1 ~ 1.1386, applied to cos and "
        "sin). 2 heads, 2 kv heads (plain MHA), head_dim 32, chosen so the YaRN ramp has a fractional band "
        "(ramp over dims [0, 2): band 0 unscaled, band 1 half-blended, bands 2.. divided by 4); with head_dim 16 "
        "it would have none. Untied; sequence length 24.",
        config=base_kwargs(
            num_attention_heads=2,
            num_key_value_heads=2,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        seq_len=24,
        ablations={
            "no yarn scaling": {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}},
            "yarn without attention_factor": {"rope_parameters": {
                "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                "original_max_position_embeddings": 16, "attention_factor": 1.0}},
            "linear factor 4 instead of yarn": {"rope_parameters": {
                "rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}},
        },
    ),
    dict(
        name="qwen2-bias-tied",
        cls="Qwen2ForCausalLM",
        description="Qwen2: q/k/v projections with (non-zero, std 1) bias, o_proj without; 4 heads, 2 kv heads, "
        "head_dim 16; tied embeddings; RoPE theta 1e4; no sliding window (use_sliding_window false).",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        seq_len=12,
        ablations={"q/k/v biases zeroed": {"zero_params": (".bias",)}},
    ),
    dict(
        name="qwen3-qknorm",
        cls="Qwen3ForCausalLM",
        description="Qwen3: per-head RMSNorm on q and k (q_norm/k_norm over head_dim, applied before RoPE) with "
        "random non-unit weights; no bias; 4 heads, 2 kv heads, explicit head_dim 32; untied; RoPE theta 1e6; "
        "rms_norm_eps 1e-3 (deliberately large so a wrong eps, also used by q_norm/k_norm, is visible).",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            attention_bias=False,
            use_sliding_window=False,
            rms_norm_eps=1e-3,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
        seq_len=12,
        ablations={
            "q_norm/k_norm weights = 1": {"one_params": ("q_norm.weight", "k_norm.weight")},
            "rms_norm_eps 1e-6": {"rms_norm_eps": 1e-6, "min_diff": 1e-3},
        },
    ),
    dict(
        name="mistral",
        cls="MistralForCausalLM",
        description="Mistral: 4 heads, 1 kv head (MQA), head_dim 16, sliding_window=None (plain causal "
        "attention), RoPE theta 1e6, untied.",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=1,
            sliding_window=None,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
        seq_len=12,
        ablations={"rope_theta 1e4": {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}},
    ),
    dict(
        name="mistral-sliding",
        cls="MistralForCausalLM",
        description="Mistral as above but with sliding_window=5 (each query sees itself and the 4 previous "
        "positions), sequence length 12 so the window cuts in; RoPE theta 1e6, untied.",
        config=base_kwargs(
            num_attention_heads=4,
            num_key_value_heads=1,
            sliding_window=5,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
        seq_len=12,
        ablations={"no sliding window": {"sliding_window": None}},
    ),
]

# An ablation re-runs the same weights under a changed config (or with some parameters zeroed / set to
# one) and must move the logits by at least this much, or the fixture would not catch that mistake.
ABLATION_MIN_DIFF = 1e-2


class FixtureError(RuntimeError):
    pass


def check(cond, msg):
    if not cond:
        raise FixtureError(msg)


class WarningCollector(logging.Handler):
    """Collects transformers' warnings so RoPE-validation complaints are not lost in the log."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        try:
            self.messages.append(record.getMessage())
        except Exception:  # pragma: no cover
            self.messages.append(str(record.msg))


# ----------------------------------------------------------------------------------------------
# Independent reference for the RoPE inverse frequencies (float64), compared with the model's buffer.
# ----------------------------------------------------------------------------------------------

def reference_inv_freq(rp, head_dim, max_pos):
    """Returns (inv_freq float64 [head_dim/2], attention_scaling, extra info) per transformers' formulas."""
    base = float(rp["rope_theta"])
    dim = int(head_dim * rp.get("partial_rotary_factor", 1.0))
    idx = np.arange(0, dim, 2, dtype=np.float64)
    inv = 1.0 / base ** (idx / dim)
    rtype = rp.get("rope_type", "default")
    info = {}
    if rtype == "default":
        return inv, 1.0, info
    if rtype == "linear":
        return inv / float(rp["factor"]), 1.0, info
    if rtype == "llama3":
        factor = float(rp["factor"])
        lo, hi = float(rp["low_freq_factor"]), float(rp["high_freq_factor"])
        old = float(rp["original_max_position_embeddings"])
        low_wl, high_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        out = np.where(wl > low_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wl < high_wl) & ~(wl > low_wl)
        out = np.where(medium, smoothed, out)
        info["llama3_bands"] = {
            "high_freq_wavelen": high_wl,
            "low_freq_wavelen": low_wl,
            "wavelen": wl.tolist(),
            "kept (wavelen < high_freq_wavelen)": int((wl < high_wl).sum()),
            "smoothed": int(medium.sum()),
            "divided_by_factor (wavelen > low_freq_wavelen)": int((wl > low_wl).sum()),
            "smooth_factor_of_smoothed": smooth[medium].tolist(),
        }
        return out, 1.0, info
    if rtype == "yarn":
        factor = rp.get("factor")
        omax = float(rp["original_max_position_embeddings"])
        if factor is None:
            factor = max_pos / omax
        factor = float(factor)
        att = rp.get("attention_factor")
        mscale, mscale_all = rp.get("mscale"), rp.get("mscale_all_dim")

        def get_mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        if att is None:
            att = get_mscale(factor, mscale) / get_mscale(factor, mscale_all) if (mscale and mscale_all) \
                else get_mscale(factor)
        beta_fast = rp.get("beta_fast") or 32
        beta_slow = rp.get("beta_slow") or 1

        def corr_dim(nrot):
            return (dim * math.log(omax / (nrot * 2 * math.pi))) / (2 * math.log(base))

        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if rp.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extra = 1 - ramp
        out = (inv / factor) * (1 - extra) + inv * extra
        info["yarn"] = {"low": low, "high": high, "extrapolation_factor": extra.tolist(),
                        "attention_factor": att, "beta_fast": beta_fast, "beta_slow": beta_slow}
        return out, float(att), info
    raise FixtureError(f"no reference for rope_type {rtype!r}")


# ----------------------------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------------------------

def init_weights(model, cfg, gen):
    """Re-draws every parameter in place (so tied parameters stay tied); returns the names touched."""
    tied = bool(cfg.tie_word_embeddings)
    seen = []
    with torch.no_grad():
        for name, p in model.named_parameters():  # de-duplicated: a tied lm_head shows up once, as embed_tokens
            shape = tuple(p.shape)
            if name.endswith("embed_tokens.weight"):
                std = EMBED_STD_TIED if tied else EMBED_STD_UNTIED
                new = torch.randn(shape, generator=gen) * std
            elif name.endswith("lm_head.weight"):
                new = torch.randn(shape, generator=gen) * (LM_HEAD_GAIN / math.sqrt(shape[1]))
            elif p.ndim == 2 and name.endswith(("q_proj.weight", "k_proj.weight")):
                new = torch.randn(shape, generator=gen) * (QK_GAIN / math.sqrt(shape[1]))
            elif p.ndim == 2 and name.endswith(
                ("v_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight", "down_proj.weight")
            ):
                new = torch.randn(shape, generator=gen) * (1.0 / math.sqrt(shape[1]))
            elif p.ndim == 1 and name.endswith("norm.weight"):
                new = NORM_LOW + (NORM_HIGH - NORM_LOW) * torch.rand(shape, generator=gen)
            elif p.ndim == 1 and name.endswith(".bias"):
                new = torch.randn(shape, generator=gen) * BIAS_STD
            else:
                raise FixtureError(f"parameter {name} {shape} has no init rule; extend init_weights")
            p.copy_(new.to(p.dtype))
            seen.append(name)
    return seen


def round_to_bf16_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def build_model(case, gen):
    cls = getattr(transformers, case["cls"])
    config_cls = cls.config_class
    collector = WarningCollector()
    tlog = logging.getLogger("transformers")
    tlog.addHandler(collector)
    try:
        config = config_cls(**case["config"], attn_implementation="eager")
        model = cls(config)
    finally:
        tlog.removeHandler(collector)
    model = model.to(device="cpu", dtype=torch.float32).eval()
    cfg = model.config

    # Make sure transformers understood the config the way we meant it (v4 would silently ignore
    # `rope_parameters` and use rope_theta=10000).
    want = case["config"]
    check(cfg._attn_implementation == "eager", f"attn implementation is {cfg._attn_implementation!r}, not eager")
    rp = cfg.rope_parameters
    check(isinstance(rp, dict), f"config.rope_parameters is {rp!r}")
    for k, v in want["rope_parameters"].items():
        check(rp.get(k) == v, f"config.rope_parameters[{k!r}] = {rp.get(k)!r}, expected {v!r} (got {rp})")
    for k in ("hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "intermediate_size",
              "vocab_size", "max_position_embeddings", "tie_word_embeddings", "head_dim", "rms_norm_eps",
              "sliding_window"):
        if k in want:
            check(getattr(cfg, k, None) == want[k], f"config.{k} = {getattr(cfg, k, None)!r}, expected {want[k]!r}")
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    check(cfg.eos_token_id is None, f"config.eos_token_id is {cfg.eos_token_id!r}; generation could stop early")
    check(getattr(model.generation_config, "eos_token_id", None) is None,
          f"generation_config.eos_token_id is {model.generation_config.eos_token_id!r}")

    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    if cfg.tie_word_embeddings:
        check(head is emb or head.data_ptr() == emb.data_ptr(), "tie_word_embeddings=True but lm_head is not tied")
    else:
        check(head.data_ptr() != emb.data_ptr(), "tie_word_embeddings=False but lm_head shares the embedding")
    return model, head_dim, collector.messages


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------

def run_ablations(case, model, input_ids, logits):
    """Same weights, one thing changed: how far do the logits move? (Each must move >= ABLATION_MIN_DIFF.)"""
    results = {}
    cls = getattr(transformers, case["cls"])
    for label, change in case.get("ablations", {}).items():
        change = dict(change)
        min_diff = change.pop("min_diff", ABLATION_MIN_DIFF)
        zero = change.pop("zero_params", ())
        one = change.pop("one_params", ())
        state = {k: v.clone() for k, v in model.state_dict().items()}
        hit = 0
        for k in state:
            if zero and k.endswith(tuple(zero)):
                state[k].zero_()
                hit += 1
            if one and k.endswith(tuple(one)):
                state[k].fill_(1.0)
                hit += 1
        check(not (zero or one) or hit > 0, f"ablation {label!r} matched no parameter")
        kwargs = {**case["config"], **change}
        other = cls(cls.config_class(**kwargs, attn_implementation="eager")).to(torch.float32).eval()
        missing, unexpected = other.load_state_dict(state, strict=False)
        check(not unexpected and all("rotary" in m or "inv_freq" in m for m in missing),
              f"ablation {label!r}: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            d = other(input_ids=input_ids).logits - logits
        diff = float(d.abs().max())
        results[label] = {"max_abs": diff, "rel_l2": float(d.norm() / logits.norm())}
        check(diff >= min_diff, f"ablation {label!r} moves the logits by only {diff:.3g} (< {min_diff}); "
                                "the fixture would not catch that mistake")
    return results


def safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in sorted(header.items())}


def manual_greedy(model, prompt, steps):
    """Greedy decoding without KV cache (full recompute each step); returns tokens and min top1-top2 gap."""
    seq = prompt.clone()
    toks, margins = [], []
    for _ in range(steps):
        last = model(input_ids=seq, use_cache=False).logits[0, -1]
        top = torch.topk(last, 2)
        margins.append(float(top.values[0] - top.values[1]))
        nxt = int(torch.argmax(last))
        toks.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]], dtype=seq.dtype)], dim=1)
    return toks, margins


def run_case(case, out_root, weights_dtype, strict_warnings):
    name = case["name"]
    case_dir = os.path.join(out_root, name)
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)

    # Same seed for every case, but an independent generator per case: a case's output does not
    # depend on which other cases ran before it.
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model, head_dim, warnings_seen = build_model(case, gen)
    rope_warnings = [m for m in warnings_seen if "rope" in m.lower()]
    if rope_warnings and strict_warnings:
        raise FixtureError(f"transformers warned about the RoPE config: {rope_warnings} (use --allow-warnings)")

    init_weights(model, model.config, gen)
    if weights_dtype == "bfloat16":
        round_to_bf16_(model)  # values exactly representable in bf16, so saving in bf16 is lossless

    cfg = model.config
    L = case["seq_len"]
    input_ids = torch.randint(0, cfg.vocab_size, (BATCH, L), generator=gen, dtype=torch.int64)

    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
    check(logits.dtype == torch.float32, f"logits dtype {logits.dtype}")
    check(tuple(logits.shape) == (BATCH, L, cfg.vocab_size), f"logits shape {tuple(logits.shape)}")
    check(bool(torch.isfinite(logits).all()), "non-finite logits")
    logits_np = logits.numpy().astype(np.float32)

    # Greedy generation from the first row's first PROMPT_LEN tokens.
    prompt = input_ids[:1, :PROMPT_LEN].clone()
    with torch.no_grad():
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            num_beams=1,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=0,
            eos_token_id=None,
            pad_token_id=0,
            use_cache=True,
        )
        if not torch.is_tensor(out):
            out = out.sequences
        manual, margins = manual_greedy(model, prompt, NEW_TOKENS)
    check(torch.equal(out[0, :PROMPT_LEN], prompt[0]), "generate() output does not start with the prompt")
    new_tokens = [int(t) for t in out[0, PROMPT_LEN:].tolist()]
    check(len(new_tokens) == NEW_TOKENS, f"generate() returned {len(new_tokens)} new tokens, expected {NEW_TOKENS}")
    check(new_tokens == manual,
          f"generate() (KV cache) {new_tokens} != uncached greedy {manual}; min top-2 gap {min(margins):.3g}")

    # RoPE tables: the model's buffer vs an independent float64 reference.
    rope = {}
    rot = getattr(getattr(model, "model", model), "rotary_emb", None)
    ref_inv, ref_scale, ref_info = reference_inv_freq(cfg.rope_parameters, head_dim, cfg.max_position_embeddings)
    rope.update(ref_info)
    rope["reference_inv_freq"] = ref_inv.tolist()
    rope["reference_attention_scaling"] = ref_scale
    if rot is not None and hasattr(rot, "inv_freq"):
        hf_inv = rot.inv_freq.detach().to(torch.float64).cpu().numpy()
        hf_scale = float(getattr(rot, "attention_scaling", 1.0))
        rope["hf_inv_freq"] = hf_inv.tolist()
        rope["hf_attention_scaling"] = hf_scale
        check(hf_inv.shape == ref_inv.shape, f"inv_freq shape {hf_inv.shape} vs reference {ref_inv.shape}")
        check(np.allclose(hf_inv, ref_inv, rtol=1e-5, atol=0),
              f"model inv_freq {hf_inv} differs from reference {ref_inv}")
        check(abs(hf_scale - ref_scale) < 1e-6, f"attention_scaling {hf_scale} vs reference {ref_scale}")
    else:
        rope["hf_inv_freq"] = None
    if cfg.rope_parameters.get("rope_type") == "llama3":
        b = ref_info["llama3_bands"]
        for k in ("kept (wavelen < high_freq_wavelen)", "smoothed", "divided_by_factor (wavelen > low_freq_wavelen)"):
            check(b[k] >= 1, f"llama3 band {k!r} is empty: {b}")

    ablations = run_ablations(case, model, input_ids, logits)

    # Save. transformers v5 always writes safetensors and has no `safe_serialization` argument any more.
    save_model = model
    if weights_dtype == "bfloat16":
        save_model = copy.deepcopy(model).to(torch.bfloat16)
    save_kwargs = {}
    if "safe_serialization" in inspect.signature(save_model.save_pretrained).parameters:
        save_kwargs["safe_serialization"] = True
    save_model.save_pretrained(case_dir, **save_kwargs)
    st_path = os.path.join(case_dir, "model.safetensors")
    check(os.path.isfile(st_path), f"{st_path} was not written (sharded?): {sorted(os.listdir(case_dir))}")
    st_tensors = safetensors_header(st_path)

    # Reload from disk and check the saved files reproduce the logits (catches config round-trip issues).
    with torch.no_grad():
        reloaded = getattr(transformers, case["cls"]).from_pretrained(
            case_dir, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        re_logits = reloaded(input_ids=input_ids).logits
    reload_diff = float((re_logits - logits).abs().max())
    check(reload_diff <= 1e-5, f"reloaded model's logits differ by {reload_diff}")

    np.save(os.path.join(case_dir, "input_ids.npy"), input_ids.numpy().astype(np.int64))
    np.save(os.path.join(case_dir, "logits.npy"), logits_np)

    versions = {"transformers": transformers.__version__, "torch": torch.__version__}
    greedy = {
        "prompt": [int(t) for t in prompt[0].tolist()],
        "new_tokens": new_tokens,
        **versions,
        "do_sample": False,
        "max_new_tokens": NEW_TOKENS,
        "eos_token_id": None,
        "pad_token_id": 0,
        "min_top2_logit_gap": min(margins),
    }
    with open(os.path.join(case_dir, "greedy.json"), "w") as f:
        json.dump(greedy, f, indent=2)
        f.write("\n")

    with open(os.path.join(case_dir, "config.json")) as f:
        saved_config = json.load(f)
    flat = logits_np.reshape(-1)
    fixture = {
        "case": name,
        "description": case["description"],
        "model_class": case["cls"],
        "config_kwargs": case["config"],
        "config_json": saved_config,
        "head_dim": head_dim,
        "attn_implementation": "eager",
        "seq_len": L,
        "batch": BATCH,
        "seed": SEED,
        "weights_dtype_saved": weights_dtype,
        "compute_dtype": "float32",
        "device": "cpu",
        "weight_init": {
            "embed_tokens": f"N(0, {EMBED_STD_TIED if cfg.tie_word_embeddings else EMBED_STD_UNTIED}^2)",
            "lm_head (untied)": f"N(0, ({LM_HEAD_GAIN}/sqrt(hidden))^2)",
            "q_proj, k_proj": f"N(0, ({QK_GAIN}/sqrt(in_features))^2)",
            "v_proj, o_proj, gate_proj, up_proj, down_proj": "N(0, (1/sqrt(in_features))^2)",
            "*norm.weight (incl. q_norm, k_norm)": f"U({NORM_LOW}, {NORM_HIGH})",
            "*.bias": f"N(0, {BIAS_STD}^2)",
            "rounded_to_bf16": weights_dtype == "bfloat16",
        },
        "safetensors_tensors": st_tensors,
        "rope": rope,
        "logits_stats": {
            "max_abs": float(np.abs(flat).max()),
            "std": float(flat.std()),
            "mean_per_position_std": float(logits_np.std(axis=-1).mean()),
        },
        "reload_max_abs_diff": reload_diff,
        "ablations_logit_change": ablations,
        "transformers_warnings": warnings_seen,
        "versions": {**versions, "numpy": np.__version__, "python": platform.python_version()},
    }
    with open(os.path.join(case_dir, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=2)
        f.write("\n")

    sizes = {fn: os.path.getsize(os.path.join(case_dir, fn)) for fn in sorted(os.listdir(case_dir))}
    size_txt = " ".join(f"{fn}={n}B" for fn, n in sizes.items())
    abl_txt = " ".join(f"[{label}: max {r['max_abs']:.3g}, rel_l2 {r['rel_l2']:.2g}]" for label, r in ablations.items())
    print(f"{name}: max|logit|={fixture['logits_stats']['max_abs']:.4f} "
          f"logit_std={fixture['logits_stats']['std']:.3f} min_greedy_gap={min(margins):.3g} {size_txt} "
          f"ablations (logit change): {abl_txt}", flush=True)
    for m in warnings_seen:
        print(f"  transformers warning: {m}", flush=True)
    return sizes["model.safetensors"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="test/fixtures/hf", help="output folder (default: test/fixtures/hf)")
    ap.add_argument("--cases", nargs="*", default=None, help="only these cases (default: all)")
    ap.add_argument("--weights-dtype", choices=["float32", "bfloat16"], default="float32",
                    help="dtype of model.safetensors. bfloat16 rounds every weight to a bf16 value first, so the "
                         "float32 reference outputs stay exact for the bf16 file (default: float32)")
    ap.add_argument("--allow-warnings", action="store_true",
                    help="do not fail when transformers warns about the RoPE config")
    args = ap.parse_args(argv)

    major = int(transformers.__version__.split(".")[0])
    if major < 5:
        print(f"error: transformers {transformers.__version__} found; this script needs >= 5 "
              "(RoPE settings live in config.rope_parameters)", file=sys.stderr)
        return 2

    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        pass
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(1)  # CPU only; one thread keeps reductions in a fixed order

    names = [c["name"] for c in CASES]
    selected = CASES if not args.cases else [c for c in CASES if c["name"] in args.cases]
    unknown = set(args.cases or []) - set(names)
    if unknown:
        print(f"error: unknown case(s) {sorted(unknown)}; known: {names}", file=sys.stderr)
        return 2

    os.makedirs(args.out, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}; "
          f"out={args.out} weights={args.weights_dtype}", flush=True)
    failed = []
    over_budget = []
    for case in selected:
        try:
            st_size = run_case(case, args.out, args.weights_dtype, strict_warnings=not args.allow_warnings)
            if st_size > SIZE_BUDGET:
                over_budget.append(f"{case['name']}={st_size}B")
        except Exception:
            failed.append(case["name"])
            print(f"FAILED {case['name']}:", file=sys.stderr, flush=True)
            traceback.print_exc()
    if over_budget:
        print(f"note: model.safetensors over the {SIZE_BUDGET} B target: {', '.join(over_budget)} "
              "(the specified sizes do not fit in float32; see README; --weights-dtype bfloat16 halves them)")
    if failed:
        print(f"error: {len(failed)} case(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"ok: {len(selected)} case(s) written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
