// One decoder-only transformer for every supported family (Llama, Mistral, Qwen2, Qwen3): the
// families differ only in the switches of DecoderConfig. Parameters are kept under their Hugging Face
// names so checkpoints load and save without renaming, and every Linear goes through `linear(name, x)`
// so quantizers and calibration hooks can attach by name.

import type { DecoderConfig } from './config.js';
import { ropeFrequencies, ropeTables, type RopeFrequencies } from './rope.js';
import { KVCache } from './kv-cache.js';
import { linear as linearFn, linearResidual, normLinears, normLinearSwiglu, rmsNorm } from '../nn/functional.js';
import { Tensor, add, arange, embedding, keep, reshape, tidy, transpose, slice, zeros, type DType } from '../tensor/index.js';
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
  /**
   * Take the position from the device instead of cache.length (needs `cache`): RoPE rows, KV-cache writes
   * and the attention mask all read it when the kernels run, so the forward can be recorded once as a
   * CUDA graph and replayed at every position. The caller keeps `position.at` and cache.length current.
   */
  position?: DevicePosition;
  /**
   * The RoPE rows of this forward's positions (DecoderLM.ropeRows(cache length, seq)), made beforehand: a
   * forward recorded as a CUDA graph cannot upload them from the host (decode-session.ts's prefill)
   */
  rope?: { cos: Tensor; sin: Tensor };
}

/** A forward's position held in device memory (ForwardOptions.position); DecoderLM.devicePosition makes one. */
export interface DevicePosition {
  /** int32 [1]: the number of cached positions before the forward */
  readonly at: Tensor;
  /** RoPE tables [capacity, headDim / 2] in the model's dtype: rows at, at + 1, ... are looked up */
  readonly cos: Tensor;
  readonly sin: Tensor;
  dispose(): void;
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

/** Where a forward's tokens sit: a host-side past, or device-side positions (ForwardOptions.position). */
interface Placement {
  past: number;
  pastAt: Tensor | null;
  /** int32 [seq]: the positions of the forward's tokens, on the device */
  positions: Tensor | null;
}

export class DecoderLM {
  readonly rope: RopeFrequencies;
  linearHook: LinearHook | null = null;
  kvHook: KvHook | null = null;

  constructor(
    readonly config: DecoderConfig,
    /** Hugging Face name -> tensor; every entry of parameterSpecs(config) (a streamed model: those resident now) */
    readonly params: Map<string, Tensor>,
    /**
     * A streamed model (layer-by-layer calibration, src/quant/layerwise.ts): the caller brings each layer's
     * parameters into `params` and removes them again, so the map may be partial; dtype and device are given here.
     */
    readonly streamed?: { dtype: DType; backend: Backend },
  ) {
    for (const s of parameterSpecs(config)) {
      const t = params.get(s.name);
      if (t === undefined && streamed !== undefined) continue;
      if (t === undefined) throw new Error(`DecoderLM: parameter ${s.name} missing`);
      if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
        throw new Error(`DecoderLM: parameter ${s.name} has shape ${shapeStr(t.shape)}, expected ${shapeStr(s.shape)}`);
      }
    }
    this.rope = ropeFrequencies(config.rope, config.headDim, config.maxPositionEmbeddings);
  }

  get dtype(): DType {
    return this.streamed?.dtype ?? this.param('model.embed_tokens.weight').dtype;
  }
  get backend(): Backend {
    return this.streamed?.backend ?? this.param('model.embed_tokens.weight').backend;
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

  /** A device-side position (starting at 0) for forwards against a cache of `capacity` positions. */
  devicePosition(capacity: number): DevicePosition {
    // in tidy: for a 16-bit model the float32 tables built before the cast are temporaries to free
    const { cos, sin } = tidy(() => ropeTables(this.rope, 0, capacity, this.dtype, this.backend));
    const at = zeros([1], { dtype: 'int32', device: this.backend });
    const kept = [keep(at), keep(cos), keep(sin)];
    return { at, cos, sin, dispose: () => kept.forEach((t) => t.dispose()) };
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

  /**
   * The weights of Linears that can run fused (grouped, or with the following op folded in): only without
   * a hook (quantizers and calibration see each Linear) and without biases; null otherwise.
   */
  private fusable(names: readonly string[]): Tensor[] | null {
    if (this.linearHook !== null || names.some((n) => this.params.has(`${n}.bias`))) return null;
    return names.map((n) => this.param(`${n}.weight`));
  }

  /** residual + Linear(x) */
  private residualLinear(name: string, x: Tensor, residual: Tensor): Tensor {
    const w = this.fusable([name]);
    return w ? linearResidual(x, w[0], residual) : residual.add(this.linear(name, x));
  }

  /** Logits [batch, seq (or 1 with lastOnly), vocab] for integer ids [batch, seq]. */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const c = this.config;
    if (ids.ndim !== 2) throw new RangeError(`forward: ids must be [batch, seq], got ${shapeStr(ids.shape)}`);
    const [batch, seq] = ids.shape;
    const pos = opts.position;
    if (pos && !opts.cache) throw new RangeError('forward: a device-side position needs a KV cache');
    const past = opts.cache?.length ?? 0;
    if (opts.cache && opts.cache.batch !== batch) throw new RangeError(`forward: cache batch ${opts.cache.batch} != ${batch}`);
    // positions past .. past + seq - 1, on the device when the position is
    const positions = pos ? (seq === 1 ? pos.at : add(pos.at, arange(0, seq, 1, { dtype: 'int32', device: this.backend }))) : null;
    const half = this.rope.invFreq.length;
    for (const t of opts.rope ? [opts.rope.cos, opts.rope.sin] : []) {
      if (t.ndim !== 2 || t.shape[0] !== seq || t.shape[1] !== half) {
        throw new RangeError(`forward: RoPE rows of shape ${shapeStr(t.shape)} given for ${seq} positions; make them with ropeRows(cache length, ${seq}) ([${seq}, ${half}])`);
      }
    }
    const { cos, sin } = pos && positions ? { cos: embedding(pos.cos, positions), sin: embedding(pos.sin, positions) } : (opts.rope ?? this.ropeRows(past, seq));
    const at: Placement = positions && pos ? { past: 0, pastAt: pos.at, positions } : { past, pastAt: null, positions: null };
    let h = this.embed(ids);
    for (let i = 0; i < c.numLayers; i++) h = this.block(i, h, cos, sin, at, opts.cache);
    if (!pos) opts.cache?.advance(seq);
    if (opts.lastOnly) h = slice(h, 1, seq - 1, seq);
    return this.headForward(h);
  }

  /** The RoPE tables' rows for positions start .. start + seq - 1 ([seq, headDim / 2] each, in the model's dtype). */
  ropeRows(start: number, seq: number): { cos: Tensor; sin: Tensor } {
    return ropeTables(this.rope, start, seq, this.dtype, this.backend);
  }

  /** Hidden states [batch, seq, hidden] for ids [batch, seq]: the input of layer 0. */
  embed(ids: Tensor): Tensor {
    return embedding(this.param('model.embed_tokens.weight'), ids);
  }

  /**
   * Decoder layer i alone on hidden states [batch, seq, hidden] of whole sequences from position 0 (no cache),
   * exactly as forward() runs it: layer-by-layer calibration feeds each layer the previous one's outputs.
   */
  layerForward(i: number, h: Tensor): Tensor {
    const { cos, sin } = ropeTables(this.rope, 0, h.shape[1]!, this.dtype, this.backend);
    return this.block(i, h, cos, sin, { past: 0, pastAt: null, positions: null });
  }

  /** Logits of final hidden states: the final norm, then the LM head. */
  headForward(h: Tensor): Tensor {
    return this.normLinears('model.norm', h, [this.config.tieWordEmbeddings ? 'model.embed_tokens' : 'lm_head'])[0];
  }

  /**
   * The Linears `names` of rmsNorm(h) (the norm `${norm}.weight`): one launch with the norm folded in where
   * the backend takes it (few rows, no hook), else the norm and then each Linear (through the hook).
   */
  private normLinears(norm: string, h: Tensor, names: readonly string[]): Tensor[] {
    const nw = this.param(`${norm}.weight`);
    const eps = this.config.rmsNormEps;
    const w = this.fusable(names);
    if (w) return normLinears(h, nw, eps, w);
    const x = rmsNorm(h, nw, eps);
    return names.map((n) => this.linear(n, x));
  }

  /** One decoder layer: attention and MLP, each with its residual. */
  private block(i: number, h: Tensor, cos: Tensor, sin: Tensor, at: Placement, cache?: KVCache): Tensor {
    const p = layerPrefix(i);
    const a = this.attention(i, h, cos, sin, at, cache);
    h = this.residualLinear(`${p}.self_attn.o_proj`, a, h);
    const m = this.mlpActivation(p, h);
    return this.residualLinear(`${p}.mlp.down_proj`, m, h);
  }

  /** silu(gate_proj(x)) * up_proj(x) of x = post_attention_layernorm(h): the input of down_proj */
  private mlpActivation(p: string, h: Tensor): Tensor {
    const norm = this.param(`${p}.post_attention_layernorm.weight`);
    const eps = this.config.rmsNormEps;
    const w = this.fusable([`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`]);
    if (w) return normLinearSwiglu(h, norm, eps, w[0], w[1]);
    const x = rmsNorm(h, norm, eps);
    return swiglu(this.linear(`${p}.mlp.gate_proj`, x), this.linear(`${p}.mlp.up_proj`, x));
  }

  /** Self-attention of layer i on input_layernorm(h), before o_proj. */
  private attention(i: number, h: Tensor, cos: Tensor, sin: Tensor, at: Placement, cache?: KVCache): Tensor {
    const c = this.config;
    const p = `${layerPrefix(i)}.self_attn`;
    const [batch, seq] = h.shape;
    const projected = this.normLinears(`${layerPrefix(i)}.input_layernorm`, h, ['q_proj', 'k_proj', 'v_proj'].map((n) => `${p}.${n}`));
    const heads = (proj: number, n: number, norm: string | null): Tensor => {
      let t = reshape(projected[proj], [batch, seq, n, c.headDim]);
      if (norm !== null) t = rmsNorm(t, this.param(`${p}.${norm}.weight`), c.rmsNormEps);
      return transpose(t, 1, 2); // [batch, n, seq, headDim]
    };
    let q = heads(0, c.numHeads, c.qkNorm ? 'q_norm' : null);
    let k = heads(1, c.numKvHeads, c.qkNorm ? 'k_norm' : null);
    let v = heads(2, c.numKvHeads, null);
    if (cache && at.positions && !this.kvHook) {
      // decoding at a device-side position: rotation and cache write in one pass
      [q, k, v] = cache.ropeAppendAt(i, q, k, v, cos, sin, at.positions);
    } else {
      q = rope(q, cos, sin);
      k = rope(k, cos, sin);
      if (this.kvHook) [k, v] = this.kvHook(i, k, v);
      if (cache) [k, v] = at.positions ? cache.appendAt(i, k, v, at.positions) : cache.append(i, k, v);
    }
    // grouped-query attention in one fused routine: query head h reads KV head h / (heads / kvHeads),
    // the same grouping as transformers' repeat_kv
    const out = attention(q, k, v, { scale: 1 / Math.sqrt(c.headDim), causal: true, past: at.past, pastAt: at.pastAt, window: c.slidingWindow[i] });
    // o_proj runs in forward(), fused with the residual add where it can
    return reshape(transpose(out, 1, 2), [batch, seq, c.numHeads * c.headDim]);
  }
}
