// One decoder-only transformer for every supported family (Llama, Mistral, Qwen2, Qwen3): the
// families differ only in the switches of DecoderConfig. Parameters are kept under their Hugging Face
// names so checkpoints load and save without renaming, and every Linear goes through `linear(name, x)`
// so quantizers and calibration hooks can attach by name.

import type { DecoderConfig } from './config.js';
import { ropeFrequencies, ropeTables, type RopeFrequencies } from './rope.js';
import { KVCache } from './kv-cache.js';
import { linear as linearFn, rmsNorm } from '../nn/functional.js';
import { Tensor, embedding, reshape, transpose, slice, type DType } from '../tensor/index.js';
import { attention, rope, swiglu } from '../tensor/ops/fused.js';
import type { Backend } from '../backend/backend.js';
import { shapeStr } from '../tensor/shape.js';

/** Called for each Linear: return the output, or undefined to run the plain layer. */
export type LinearHook = (name: string, x: Tensor, weight: Tensor, bias: Tensor | null) => Tensor | undefined;
/**
 * Sees layer i's keys and values [batch, kvHeads, seq, headDim] (after RoPE, before the cache) and returns
 * the ones attention uses: KV-cache quantizers calibrate and fake-quantize here.
 */
export type KvHook = (layer: number, k: Tensor, v: Tensor) => [Tensor, Tensor];

export interface ForwardOptions {
  cache?: KVCache;
  /** compute logits for the last position only (generation) */
  lastOnly?: boolean;
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** norms are initialised to ones, biases to zeros, the rest to N(0, 0.02) */
  init: 'normal' | 'ones' | 'zeros';
}

export function layerPrefix(i: number): string {
  return `model.layers.${i}`;
}

/** Every parameter the config implies, in Hugging Face naming and order. */
export function parameterSpecs(c: DecoderConfig): ParamSpec[] {
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize], init: 'normal' }];
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const lin = (name: string, out: number, inp: number, bias: boolean): void => {
    specs.push({ name: `${name}.weight`, shape: [out, inp], init: 'normal' });
    if (bias) specs.push({ name: `${name}.bias`, shape: [out], init: 'zeros' });
  };
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    specs.push({ name: `${p}.input_layernorm.weight`, shape: [c.hiddenSize], init: 'ones' });
    lin(`${p}.self_attn.q_proj`, q, c.hiddenSize, c.attentionBias);
    lin(`${p}.self_attn.k_proj`, kv, c.hiddenSize, c.attentionBias);
    lin(`${p}.self_attn.v_proj`, kv, c.hiddenSize, c.attentionBias);
    lin(`${p}.self_attn.o_proj`, c.hiddenSize, q, c.outputBias);
    if (c.qkNorm) {
      specs.push({ name: `${p}.self_attn.q_norm.weight`, shape: [c.headDim], init: 'ones' });
      specs.push({ name: `${p}.self_attn.k_norm.weight`, shape: [c.headDim], init: 'ones' });
    }
    specs.push({ name: `${p}.post_attention_layernorm.weight`, shape: [c.hiddenSize], init: 'ones' });
    lin(`${p}.mlp.gate_proj`, c.intermediateSize, c.hiddenSize, c.mlpBias);
    lin(`${p}.mlp.up_proj`, c.intermediateSize, c.hiddenSize, c.mlpBias);
    lin(`${p}.mlp.down_proj`, c.hiddenSize, c.intermediateSize, c.mlpBias);
  }
  specs.push({ name: 'model.norm.weight', shape: [c.hiddenSize], init: 'ones' });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize], init: 'normal' });
  return specs;
}

export class DecoderLM {
  readonly rope: RopeFrequencies;
  linearHook: LinearHook | null = null;
  kvHook: KvHook | null = null;

  constructor(
    readonly config: DecoderConfig,
    /** Hugging Face name -> tensor; every entry of parameterSpecs(config) */
    readonly params: Map<string, Tensor>,
  ) {
    for (const s of parameterSpecs(config)) {
      const t = params.get(s.name);
      if (t === undefined) throw new Error(`DecoderLM: parameter ${s.name} missing`);
      if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
        throw new Error(`DecoderLM: parameter ${s.name} has shape ${shapeStr(t.shape)}, expected ${shapeStr(s.shape)}`);
      }
    }
    this.rope = ropeFrequencies(config.rope, config.headDim, config.maxPositionEmbeddings);
  }

  get dtype(): DType {
    return this.param('model.embed_tokens.weight').dtype;
  }
  get backend(): Backend {
    return this.param('model.embed_tokens.weight').backend;
  }

  param(name: string): Tensor {
    const t = this.params.get(name);
    if (t === undefined) throw new Error(`no parameter ${name}`);
    return t;
  }

  /** Trainable tensors in a stable order (tied lm_head is the embedding). */
  parameters(): Tensor[] {
    return [...this.params.values()];
  }

  newCache(batch: number, capacity: number): KVCache {
    const c = this.config;
    return new KVCache(c.numLayers, batch, c.numKvHeads, capacity, c.headDim, this.dtype, this.backend);
  }

  private linear(name: string, x: Tensor): Tensor {
    const w = this.param(`${name}.weight`);
    const b = this.params.get(`${name}.bias`) ?? null;
    const hooked = this.linearHook?.(name, x, w, b);
    return hooked ?? linearFn(x, w, b);
  }

  /** Logits [batch, seq (or 1 with lastOnly), vocab] for integer ids [batch, seq]. */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const c = this.config;
    if (ids.ndim !== 2) throw new RangeError(`forward: ids must be [batch, seq], got ${shapeStr(ids.shape)}`);
    const [batch, seq] = ids.shape;
    const past = opts.cache?.length ?? 0;
    if (opts.cache && opts.cache.batch !== batch) throw new RangeError(`forward: cache batch ${opts.cache.batch} != ${batch}`);
    const { cos, sin } = ropeTables(this.rope, past, seq, this.dtype, this.backend);
    let h = embedding(this.param('model.embed_tokens.weight'), ids);
    for (let i = 0; i < c.numLayers; i++) {
      const p = layerPrefix(i);
      const a = this.attention(i, rmsNorm(h, this.param(`${p}.input_layernorm.weight`), c.rmsNormEps), cos, sin, past, opts.cache);
      h = h.add(a);
      const m = this.mlp(p, rmsNorm(h, this.param(`${p}.post_attention_layernorm.weight`), c.rmsNormEps));
      h = h.add(m);
    }
    opts.cache?.advance(seq);
    if (opts.lastOnly) h = slice(h, 1, seq - 1, seq);
    h = rmsNorm(h, this.param('model.norm.weight'), c.rmsNormEps);
    const head = c.tieWordEmbeddings ? 'model.embed_tokens' : 'lm_head';
    return this.linear(head, h);
  }

  private mlp(p: string, x: Tensor): Tensor {
    const gate = this.linear(`${p}.mlp.gate_proj`, x);
    const up = this.linear(`${p}.mlp.up_proj`, x);
    return this.linear(`${p}.mlp.down_proj`, swiglu(gate, up));
  }

  private attention(i: number, x: Tensor, cos: Tensor, sin: Tensor, past: number, cache?: KVCache): Tensor {
    const c = this.config;
    const p = `${layerPrefix(i)}.self_attn`;
    const [batch, seq] = x.shape;
    const heads = (name: string, n: number, norm: string | null): Tensor => {
      let t = reshape(this.linear(`${p}.${name}`, x), [batch, seq, n, c.headDim]);
      if (norm !== null) t = rmsNorm(t, this.param(`${p}.${norm}.weight`), c.rmsNormEps);
      return transpose(t, 1, 2); // [batch, n, seq, headDim]
    };
    const q = rope(heads('q_proj', c.numHeads, c.qkNorm ? 'q_norm' : null), cos, sin);
    let k = rope(heads('k_proj', c.numKvHeads, c.qkNorm ? 'k_norm' : null), cos, sin);
    let v = heads('v_proj', c.numKvHeads, null);
    if (this.kvHook) [k, v] = this.kvHook(i, k, v);
    if (cache) [k, v] = cache.append(i, k, v);
    // grouped-query attention in one fused routine: query head h reads KV head h / (heads / kvHeads),
    // the same grouping as transformers' repeat_kv
    const out = attention(q, k, v, { scale: 1 / Math.sqrt(c.headDim), causal: true, past, window: c.slidingWindow[i] });
    const merged = reshape(transpose(out, 1, 2), [batch, seq, c.numHeads * c.headDim]);
    return this.linear(`${p}.o_proj`, merged);
  }
}
