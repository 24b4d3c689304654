#!/usr/bin/env python3
"""Build a random-weight checkpoint with the exact Llama-3.2-1B configuration (issue #3's benchmark model).

    python3 bench/make_llama1b.py /tmp/llama1b          # the real shape: 1.24 B parameters, 2.47 GB of bf16
    python3 bench/make_llama1b.py /tmp/tiny --tiny      # same structure, tiny sizes (smoke tests, CPU)

Writes config.json, generation_config.json and model.safetensors with `LlamaForCausalLM.save_pretrained`
(bfloat16), plus `mopt-bench-model.json` (what was built, with which seed). When the folder already holds a
complete checkpoint built with the same configuration and seed, nothing is done.

Weights: every matrix (and the tied embedding / LM head) ~ N(0, 0.02), every RMSNorm weight = 1, drawn in
float32 on the GPU (CPU when there is none) from a seeded generator, then rounded to bfloat16. No network.
Requirements: torch, transformers >= 5 (RoPE settings live in `rope_parameters`; written against 5.17).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

MARKER = "mopt-bench-model.json"
INIT_STD = 0.02

# meta-llama/Llama-3.2-1B's config.json, in transformers v5 form (RoPE in rope_parameters).
LLAMA_3_2_1B = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    hidden_act="silu",
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    rope_parameters={
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    attention_bias=False,
    attention_dropout=0.0,
    mlp_bias=False,
    initializer_range=INIT_STD,
    bos_token_id=128000,
    eos_token_id=128001,
    use_cache=True,
)

# Same structure at toy size, for smoke tests of the benchmark scripts (not for numbers).
TINY = dict(
    LLAMA_3_2_1B,
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=4096,
    rope_parameters=dict(LLAMA_3_2_1B["rope_parameters"], original_max_position_embeddings=256),
    bos_token_id=1,
    eos_token_id=2,
)


def fail(msg: str) -> None:
    print(f"make_llama1b: error: {msg}", file=sys.stderr)
    sys.exit(1)


def safetensors_names(folder: str) -> dict[str, dict]:
    """Tensor name -> {dtype, shape} from the safetensors header(s), single file or sharded."""
    files = []
    index = os.path.join(folder, "model.safetensors.index.json")
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        with open(index) as f:
            files = sorted({os.path.join(folder, v) for v in json.load(f)["weight_map"].values()})
    out: dict[str, dict] = {}
    for path in files:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for k, v in header.items():
            if k != "__metadata__":
                out[k] = {"dtype": v["dtype"], "shape": v["shape"]}
    return out


def is_complete(folder: str, want: dict) -> bool:
    path = os.path.join(folder, MARKER)
    if not os.path.isfile(path):
        return False
    try:
        with open(path) as f:
            have = json.load(f)
    except (OSError, ValueError):
        return False
    if have.get("config") != want["config"] or have.get("seed") != want["seed"]:
        return False
    names = safetensors_names(folder)
    return len(names) == have.get("num_tensors") and os.path.isfile(os.path.join(folder, "config.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output folder (created; reused when it already holds this checkpoint)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="toy sizes with the same structure (smoke tests)")
    ap.add_argument("--device", default=None, help="where to draw the weights (default: cuda when available)")
    args = ap.parse_args()

    cfg_kwargs = TINY if args.tiny else LLAMA_3_2_1B
    want = {"config": json.loads(json.dumps(cfg_kwargs)), "seed": args.seed}
    out = os.path.abspath(args.out)
    if is_complete(out, want):
        print(f"make_llama1b: {out} already holds this checkpoint (seed {args.seed}); nothing to do", flush=True)
        return
    if os.path.exists(out) and not os.path.isdir(out):
        fail(f"{out} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, MARKER)):
        fail(f"{out} is not empty and was not written by this script; pick another folder")

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.perf_counter()
    config = LlamaConfig(**cfg_kwargs)
    # transformers must have understood the RoPE settings (v4 would silently ignore rope_parameters)
    rp = config.rope_parameters
    for k, v in cfg_kwargs["rope_parameters"].items():
        if not isinstance(rp, dict) or rp.get(k) != v:
            fail(f"config.rope_parameters is {rp!r}; expected {k}={v!r} (transformers {transformers.__version__})")

    torch.manual_seed(args.seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model = model.to(device=device, dtype=torch.float32)
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        fail("lm_head is not tied to embed_tokens although tie_word_embeddings=True")

    # Our own seeded init (independent of transformers' _init_weights and its 'already initialised' flags).
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    n_params = 0
    with torch.no_grad():
        for name, p in model.named_parameters():  # a tied tensor is listed once
            n_params += p.numel()
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, INIT_STD, generator=gen)
    model = model.to(torch.bfloat16).eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_init = time.perf_counter() - t0

    partial = out + ".partial"
    if os.path.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    t1 = time.perf_counter()
    model.save_pretrained(partial)
    names = safetensors_names(partial)
    if not names:
        fail(f"save_pretrained wrote no safetensors file into {partial}: {sorted(os.listdir(partial))}")
    if "lm_head.weight" in names:
        fail("the saved checkpoint has a separate lm_head.weight although the embeddings are tied")
    bad = {k: v["dtype"] for k, v in names.items() if v["dtype"] != "BF16"}
    if bad:
        fail(f"tensors not saved as BF16: {bad}")
    stored = 0
    for v in names.values():
        n = 1
        for d in v["shape"]:
            n *= d
        stored += n
    if stored != n_params:
        fail(f"saved {stored} parameters, the model has {n_params}")
    with open(os.path.join(partial, "config.json")) as f:
        saved_cfg = json.load(f)
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
              "intermediate_size", "vocab_size", "rope_parameters", "tie_word_embeddings", "rms_norm_eps",
              "max_position_embeddings"):
        if saved_cfg.get(k) != cfg_kwargs[k]:
            fail(f"config.json has {k}={saved_cfg.get(k)!r}, expected {cfg_kwargs[k]!r}")
    marker = dict(want, num_tensors=len(names), num_params=n_params, weight_bytes=2 * n_params,
                  torch=torch.__version__, transformers=transformers.__version__, device=str(device),
                  written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    with open(os.path.join(partial, MARKER), "w") as f:
        json.dump(marker, f, indent=2)
    if os.path.exists(out):
        shutil.rmtree(out)  # ours (marker checked above) or empty
    os.replace(partial, out)
    t_save = time.perf_counter() - t1
    print(f"make_llama1b: wrote {out}: {n_params:,} parameters ({2 * n_params / 1e9:.3f} GB bf16) in "
          f"{len(names)} tensors; init {t_init:.1f} s on {device}, save {t_save:.1f} s "
          f"(torch {torch.__version__}, transformers {transformers.__version__})", flush=True)


if __name__ == "__main__":
    main()
