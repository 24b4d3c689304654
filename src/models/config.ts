// Hugging Face config.json -> the normalised decoder description mopt's model code reads.
// Every key is validated; an unknown architecture or unsupported value names the key and the file.

import { UserError } from '../util/errors.js';
import { findFamily, supportedModelTypes } from './registry.js';

export type RopeType = 'default' | 'linear' | 'llama3' | 'yarn';

export interface RopeConfig {
  type: RopeType;
  theta: number;
  factor: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
  /** yarn */
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
  attentionFactor?: number;
  truncate?: boolean;
}

export interface DecoderConfig {
  modelType: string;
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  /** bias on o_proj (Llama's attention_bias covers all four projections) */
  outputBias: boolean;
  mlpBias: boolean;
  qkNorm: boolean;
  /** per layer: null = full causal attention, n = sliding window of n positions */
  slidingWindow: (number | null)[];
  bosTokenId: number | null;
  eosTokenIds: number[];
  torchDtype: string | null;
}

type Json = Record<string, unknown>;

class Reader {
  constructor(private readonly cfg: Json, private readonly file: string) {}
  fail(key: string, msg: string): never {
    throw new UserError(`${this.file}: "${key}" ${msg}`);
  }
  has(key: string): boolean {
    return this.cfg[key] !== undefined && this.cfg[key] !== null;
  }
  raw(key: string): unknown {
    return this.cfg[key];
  }
  int(key: string, fallback?: number): number {
    const v = this.cfg[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, 'is missing; it is required to build the model');
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) this.fail(key, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  }
  num(key: string, fallback?: number): number {
    const v = this.cfg[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, 'is missing');
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.cfg[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
}

function ropeFrom(r: Reader, file: string): RopeConfig {
  // transformers v5 writes rope_parameters {rope_type, rope_theta, ...}; v4 checkpoints use rope_theta + rope_scaling.
  const params = r.raw('rope_parameters');
  const scaling = r.raw('rope_scaling');
  const src = (params ?? scaling ?? {}) as Json;
  if (typeof src !== 'object' || Array.isArray(src)) r.fail(params ? 'rope_parameters' : 'rope_scaling', 'must be an object');
  const key = params ? 'rope_parameters' : 'rope_scaling';
  const sub = new Reader(src, `${file} ${key}`);
  const typeRaw = (src.rope_type ?? src.type ?? 'default') as unknown;
  const known: RopeType[] = ['default', 'linear', 'llama3', 'yarn'];
  if (typeof typeRaw !== 'string' || !known.includes(typeRaw as RopeType)) {
    r.fail(`${key}.rope_type`, `is ${JSON.stringify(typeRaw)}; supported: ${known.join(', ')}`);
  }
  const type = typeRaw as RopeType;
  const theta = src.rope_theta !== undefined ? sub.num('rope_theta') : r.num('rope_theta', 10000);
  if (src.partial_rotary_factor !== undefined && src.partial_rotary_factor !== 1) r.fail(`${key}.partial_rotary_factor`, 'other than 1 is not supported');
  if (r.has('partial_rotary_factor') && r.raw('partial_rotary_factor') !== 1) r.fail('partial_rotary_factor', 'other than 1 is not supported');
  const rope: RopeConfig = { type, theta, factor: type === 'default' ? 1 : sub.num('factor') };
  if (type === 'llama3') {
    rope.lowFreqFactor = sub.num('low_freq_factor');
    rope.highFreqFactor = sub.num('high_freq_factor');
    rope.originalMaxPositionEmbeddings = sub.num('original_max_position_embeddings');
  }
  if (type === 'yarn') {
    if (sub.has('original_max_position_embeddings')) rope.originalMaxPositionEmbeddings = sub.num('original_max_position_embeddings');
    if (sub.has('beta_fast')) rope.betaFast = sub.num('beta_fast');
    if (sub.has('beta_slow')) rope.betaSlow = sub.num('beta_slow');
    if (sub.has('mscale')) rope.mscale = sub.num('mscale');
    if (sub.has('mscale_all_dim')) rope.mscaleAllDim = sub.num('mscale_all_dim');
    if (sub.has('attention_factor')) rope.attentionFactor = sub.num('attention_factor');
    rope.truncate = sub.bool('truncate', true);
  }
  return rope;
}

function eosList(v: unknown, r: Reader): number[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'number') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return r.fail('eos_token_id', `must be an integer or a list of integers, got ${JSON.stringify(v)}`);
}

/** Validates a parsed config.json (from `file`, used in messages). */
export function parseDecoderConfig(json: unknown, file: string): DecoderConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`${file}: config must be a JSON object`);
  const cfg = json as Json;
  const r: Reader = new Reader(cfg, file);
  const modelType = cfg.model_type;
  if (typeof modelType !== 'string') r.fail('model_type', `is missing; supported: ${supportedModelTypes().join(', ')}`);
  const family = findFamily(modelType);
  if (family === undefined) r.fail('model_type', `"${modelType}" is not supported; supported: ${supportedModelTypes().join(', ')}`);
  const archs = cfg.architectures;
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : family.architectures[0];
  if (!family.architectures.includes(architecture)) {
    r.fail('architectures', `"${architecture}" is not supported for model_type "${modelType}"; supported: ${family.architectures.join(', ')}`);
  }
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') r.fail('hidden_act', `"${String(act)}" is not supported; supported: silu`);

  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) r.fail('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = r.int('head_dim', hiddenSize / numHeads);
  const numLayers = r.int('num_hidden_layers');
  const maxPositionEmbeddings = r.int('max_position_embeddings', 2048);

  const slidingWindow = slidingWindows(cfg, r, family.slidingWindowRule, numLayers);
  const attentionBias = family.attentionBias === 'always' ? true : r.bool('attention_bias', false);
  return {
    modelType,
    architecture,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    intermediateSize: r.int('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.num('rms_norm_eps', 1e-6),
    maxPositionEmbeddings,
    rope: ropeFrom(r, file),
    tieWordEmbeddings: r.bool('tie_word_embeddings', family.tieDefault),
    attentionBias,
    outputBias: family.attentionBias === 'always' ? false : attentionBias,
    mlpBias: r.bool('mlp_bias', false),
    qkNorm: family.qkNorm,
    slidingWindow,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id, r),
    torchDtype: typeof (cfg.dtype ?? cfg.torch_dtype) === 'string' ? String(cfg.dtype ?? cfg.torch_dtype) : null,
  };
}

function slidingWindows(cfg: Json, r: Reader, rule: 'mistral' | 'qwen' | 'none', numLayers: number): (number | null)[] {
  const window = cfg.sliding_window;
  const layerTypes = cfg.layer_types;
  if (Array.isArray(layerTypes)) {
    if (layerTypes.length !== numLayers) r.fail('layer_types', `has ${layerTypes.length} entries for ${numLayers} layers`);
    return layerTypes.map((t, i) => {
      if (t === 'full_attention') return null;
      if (t === 'sliding_attention') return r.int('sliding_window');
      return r.fail(`layer_types[${i}]`, `"${String(t)}" is not supported; supported: full_attention, sliding_attention`);
    });
  }
  if (window === undefined || window === null || rule === 'none') return new Array<number | null>(numLayers).fill(null);
  const w = r.int('sliding_window');
  if (rule === 'mistral') return new Array<number | null>(numLayers).fill(w);
  // Qwen2/Qwen3: only with use_sliding_window, and only from max_window_layers on
  if (!r.bool('use_sliding_window', false)) return new Array<number | null>(numLayers).fill(null);
  const from = r.int('max_window_layers', numLayers);
  return Array.from({ length: numLayers }, (_, i) => (i >= from ? w : null));
}
