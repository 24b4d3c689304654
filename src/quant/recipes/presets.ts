// Model Optimizer's presets as data, in the same shape a user recipe file has (docs/reference/modelopt.md
// §1.1). Each preset is built the way Model Optimizer builds it: `*` disabled first, then the format's
// rules, then the default exclusions last so they win over the format rules.

import { UserError } from '../../util/errors.js';
import { recipeFromData } from './parse.js';
import type { Recipe } from './types.js';

type Entry = [string, Record<string, unknown>];
interface PresetData { algorithm: string; quant_cfg: Entry[] }

const OFF = { enable: false };

// `default_disabled_quantizers` (§1.1 step 3). Model Optimizer also disables nn.Embedding, BatchNorm and
// LeakyReLU by module class; we have no classes, only names, so embeddings are excluded by their HF names.
// (The linear_attn conv/a/b entries are left out: §1.1 does not give their exact globs.)
export const DEFAULT_EXCLUSIONS: readonly string[] = [
  '*lm_head*', '*router*', '*mlp.gate.*', '*block_sparse_moe.gate*', '*proj_out.*', 'output.*', 'mtp.*',
  '*mixer.conv1d*',
  '*visual*', '*vision_tower*', '*vision_model*', '*embed_vision*', '*multi_modal_projector*',
  '*embed_tokens*', '*wte*', '*embeddings*',
];

const W = '*weight_quantizer';
const IN = '*input_quantizer';
const FP8 = { format: 'fp8' };
const INT4_128 = { format: 'int4', block_size: 128 };
const NVFP4 = { format: 'nvfp4', block_size: 16, dynamic: true };

function preset(algorithm: string, ...rules: Entry[]): PresetData {
  return { algorithm, quant_cfg: [['*', OFF], ...rules, ...DEFAULT_EXCLUSIONS.map((g): Entry => [g, OFF])] };
}

// Rows of §1.1's table; names as hf_ptq's --qformat (int8_sq, w4a8_awq, nvfp4_awq are its CLI names).
const PRESET_DATA = {
  fp8: preset('max', [W, FP8], [IN, FP8]),
  int8_sq: preset('smoothquant', [W, { format: 'int8', axis: 0 }], [IN, { format: 'int8' }]),
  int4_awq: preset('awq_lite', [W, INT4_128]),
  w4a8_awq: preset('awq_lite', [W, { ...INT4_128, then: FP8 }], [IN, FP8]),
  nvfp4: preset('max', [W, NVFP4], [IN, NVFP4]),
  nvfp4_awq: preset('awq_lite', [W, NVFP4], [IN, NVFP4]),
  w4a16_nvfp4: preset('max', [W, NVFP4]),
  mxfp8: preset('none', [W, { format: 'mxfp8', block_size: 32, dynamic: true }], [IN, { format: 'mxfp8', block_size: 32, dynamic: true }]),
  mxfp4: preset('none', [W, { format: 'mxfp4', block_size: 32, dynamic: true }], [IN, { format: 'mxfp4', block_size: 32, dynamic: true }]),
} satisfies Record<string, PresetData>;

// KV-cache presets (presets/kv/*.yaml) target the attention's K/V BMM quantizers, per-tensor.
const KV_GLOB = '*[kv]_bmm_quantizer';
const KV_DATA = {
  fp8: [[KV_GLOB, FP8]],
  nvfp4: [[KV_GLOB, { format: 'nvfp4', block_size: 16 }]],
} satisfies Record<string, Entry[]>;

export type PresetName = keyof typeof PRESET_DATA;
export type KvPresetName = keyof typeof KV_DATA;
export const PRESET_NAMES = Object.keys(PRESET_DATA) as PresetName[];
export const KV_PRESET_NAMES = Object.keys(KV_DATA) as KvPresetName[];

/** Presets parsed once through the same validator as user files. */
export const PRESETS: Readonly<Record<PresetName, Recipe>> = Object.fromEntries(
  PRESET_NAMES.map((n) => [n, recipeFromData(PRESET_DATA[n], `preset ${n}`)]),
) as Record<PresetName, Recipe>;

/** A preset by name, optionally with a KV-cache preset; the KV rules go before the exclusions. */
export function presetRecipe(name: string, kv?: string): Recipe {
  if (!(PRESET_NAMES as string[]).includes(name)) {
    throw new UserError(`unknown quantization preset "${name}" (known: ${PRESET_NAMES.join(', ')})`);
  }
  const base = PRESET_DATA[name as PresetName];
  if (kv === undefined) return PRESETS[name as PresetName];
  if (!(KV_PRESET_NAMES as string[]).includes(kv)) {
    throw new UserError(`unknown KV-cache preset "${kv}" (known: ${KV_PRESET_NAMES.join(', ')})`);
  }
  const nExcl = DEFAULT_EXCLUSIONS.length;
  const cfg = base.quant_cfg;
  const data = { algorithm: base.algorithm, quant_cfg: [...cfg.slice(0, cfg.length - nExcl), ...KV_DATA[kv as KvPresetName], ...cfg.slice(cfg.length - nExcl)] };
  return recipeFromData(data, `preset ${name} + kv ${kv}`);
}
