// Model Optimizer's unified Hugging Face checkpoint metadata (../shared/docs/formats.md, modelopt.md §3,
// docs/export.md): which quant_algo a preset exports as, one Linear's layer config (quantized_layers entry),
// hf_quant_config.json and config.json["quantization_config"], single-algorithm or MIXED_PRECISION. Reading
// goes through the same tables, so what the exporter writes and what the loader accepts cannot drift apart.
// The tensors of a quantized Linear are in modelopt-tensors.ts.

import type { PresetName, KvPresetName } from '../quant/recipes/presets.js';
import { UserError } from '../util/errors.js';

export const HF_QUANT_CONFIG = 'hf_quant_config.json';
export const MIXED_PRECISION = 'MIXED_PRECISION';

/** What a preset exports as. Presets missing here are not exportable yet (the exporter says so). */
export const PRESET_ALGO: Partial<Record<PresetName, string>> = {
  fp8: 'FP8',
  int8_sq: 'W8A8_SQ_PER_CHANNEL',
  int4_awq: 'W4A16_AWQ',
  w4a8_awq: 'W4A8_AWQ',
  nvfp4: 'NVFP4',
  nvfp4_awq: 'NVFP4_AWQ',
  w4a16_nvfp4: 'W4A16_NVFP4',
  mxfp8: 'MXFP8',
  mxfp4: 'MXFP4',
};
const KV_ALGO: Record<KvPresetName, string> = { fp8: 'FP8', nvfp4: 'NVFP4' };

/** quant_algo values whose weights are INT4 groups (group_size is the INT4 group, 128 by default). */
export const INT4_ALGOS: readonly string[] = ['W4A16_AWQ', 'W4A8_AWQ'];

/** One Linear's quantization as Model Optimizer's process_layer_quant_config writes it (a quantized_layers entry). */
export interface LayerConfig {
  quant_algo: string;
  group_size?: number;
  has_zero_point?: false;
  pre_quant_scale?: true;
}

export interface QuantAlgo {
  /** the preset whose rules plan a single-algorithm checkpoint; null for MIXED_PRECISION */
  preset: PresetName | null;
  quantAlgo: string;
  /** INT4 group size (AWQ), 16 (NVFP4), 32 (MX); null for MIXED_PRECISION (each layer has its own) */
  groupSize: number | null;
  kvPreset: KvPresetName | null;
  /** MIXED_PRECISION: every quantized Linear's config, in model order; null otherwise */
  layers: Map<string, LayerConfig> | null;
}

/** The preset a quant_algo is planned with (its rules give the weight / input quantizers). */
export function presetOfAlgo(algo: string): PresetName | undefined {
  return (Object.keys(PRESET_ALGO) as PresetName[]).find((p) => PRESET_ALGO[p] === algo);
}

export function groupSizeOf(algo: string, int4Group: number | null): number | null {
  return INT4_ALGOS.includes(algo) ? int4Group ?? 128 : algo.includes('NVFP4') ? 16 : algo.startsWith('MXFP') ? 32 : null;
}

/**
 * Model Optimizer's per-layer config: group_size for block formats, and has_zero_point / pre_quant_scale for
 * the AWQ ones (quant_utils.py process_layer_quant_config). MXFP4 is written "MXFP4" with group_size 32 as
 * for the other MX / NVFP4 formats, where Model Optimizer's table falls through to the lowercase "mxfp4".
 */
export function layerConfig(algo: string, groupSize: number | null): LayerConfig {
  return {
    quant_algo: algo,
    ...(groupSize === null ? {} : { group_size: groupSize }),
    ...(algo.includes('AWQ') ? { has_zero_point: false as const, pre_quant_scale: true as const } : {}),
  };
}

export function quantAlgoOf(preset: string, kv: string | null, int4Group: number | null): QuantAlgo {
  const algo = PRESET_ALGO[preset as PresetName];
  if (algo === undefined) throw new UserError(`export of the ${preset} preset is not implemented yet; presets that export: ${Object.keys(PRESET_ALGO).join(', ')}`);
  return { preset: preset as PresetName, quantAlgo: algo, groupSize: groupSizeOf(algo, int4Group), kvPreset: (kv as KvPresetName | null) ?? null, layers: null };
}

/** The KV preset of a kv_cache_quant_algo value (null: none). */
export function kvPresetOfAlgo(kvAlgo: unknown, path: string): KvPresetName | null {
  if (kvAlgo === null || kvAlgo === undefined) return null;
  const kv = (Object.keys(KV_ALGO) as KvPresetName[]).find((k) => KV_ALGO[k] === kvAlgo);
  if (kv === undefined) throw new UserError(`${path}: kv_cache_quant_algo ${JSON.stringify(kvAlgo)} is not one mopt loads (FP8, NVFP4)`);
  return kv;
}

/** The quantization an hf_quant_config.json describes (one preset, or MIXED_PRECISION with its layers). */
export function parseQuantAlgo(cfg: unknown, path: string): QuantAlgo {
  const q = (cfg as { quantization?: Record<string, unknown> } | null)?.quantization;
  const algo = q?.quant_algo;
  const known = [...Object.values(PRESET_ALGO), MIXED_PRECISION].join(', ');
  if (q === undefined || typeof algo !== 'string') throw new UserError(`${path}: no quantization.quant_algo (one of ${known}); not a Model Optimizer checkpoint?`);
  const kvPreset = kvPresetOfAlgo(q.kv_cache_quant_algo, path);
  if (algo === MIXED_PRECISION) return { preset: null, quantAlgo: algo, groupSize: null, kvPreset, layers: parseLayers(q.quantized_layers, path) };
  const preset = presetOfAlgo(algo);
  if (preset === undefined) throw new UserError(`${path}: quant_algo ${JSON.stringify(algo)} is not one mopt loads (${known})`);
  const g = q.group_size;
  return { preset, quantAlgo: algo, groupSize: typeof g === 'number' ? g : null, kvPreset, layers: null };
}

function parseLayers(v: unknown, path: string): Map<string, LayerConfig> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length === 0) {
    throw new UserError(`${path}: MIXED_PRECISION needs quantization.quantized_layers, an object {module name: {quant_algo, group_size?}}`);
  }
  const layers = new Map<string, LayerConfig>();
  for (const [name, c] of Object.entries(v as Record<string, unknown>)) {
    const cfg = c as { quant_algo?: unknown; group_size?: unknown } | null;
    // Model Optimizer's process_layer_quant_config writes MXFP4 layers as lowercase "mxfp4"
    const algo = cfg?.quant_algo === 'mxfp4' ? 'MXFP4' : cfg?.quant_algo;
    if (typeof algo !== 'string' || presetOfAlgo(algo) === undefined) {
      throw new UserError(`${path}: quantized_layers["${name}"].quant_algo ${JSON.stringify(cfg?.quant_algo)} is not one mopt loads (${Object.values(PRESET_ALGO).join(', ')})`);
    }
    const g = cfg!.group_size;
    if (g !== undefined && typeof g !== 'number') throw new UserError(`${path}: quantized_layers["${name}"].group_size ${JSON.stringify(g)} is not a number`);
    layers.set(name, layerConfig(algo, groupSizeOf(algo, g ?? null)));
  }
  return layers;
}

/** hf_quant_config.json: one quant_algo with exclude_modules, or MIXED_PRECISION with quantized_layers. */
export function hfQuantConfig(a: QuantAlgo, exclude: readonly string[], version: string): Record<string, unknown> {
  const kv = a.kvPreset === null ? null : KV_ALGO[a.kvPreset];
  const quantization = a.layers === null
    ? { ...layerConfig(a.quantAlgo, a.groupSize), kv_cache_quant_algo: kv, exclude_modules: [...exclude] }
    : { quant_algo: MIXED_PRECISION, kv_cache_quant_algo: kv, quantized_layers: Object.fromEntries(a.layers) };
  // key order as Model Optimizer's get_quant_config leaves it: quant_algo, kv_cache_quant_algo, then the rest
  const { quant_algo, kv_cache_quant_algo, ...rest } = quantization;
  return { producer: { name: 'mopt', version }, quantization: { quant_algo, kv_cache_quant_algo, ...rest } };
}

const num = (bits: number, type: 'float' | 'int', extra: Record<string, unknown> = {}): Record<string, unknown> => ({ dynamic: false, num_bits: bits, type, ...extra });

/**
 * One config group's weights / input_activations, as Model Optimizer's convert_hf_config.py
 * `_quant_algo_to_group_config` maps a quant_algo (its NVFP4_AWQ / W4A8_AWQ entry describes 8-bit float
 * inputs and 4-bit float weights with the group size; kept as written there). MXFP4 has no entry there;
 * mopt describes it (4-bit float weights and dynamic inputs, groups of 32).
 */
function configGroup(algo: string, g: number | null): Record<string, unknown> {
  const group = (d: number): Record<string, unknown> => ({ group_size: g ?? d });
  switch (algo) {
    case 'FP8':
      return { input_activations: num(8, 'float'), weights: num(8, 'float') };
    case 'NVFP4':
      return { input_activations: num(4, 'float', group(16)), weights: num(4, 'float', group(16)) };
    case 'W4A16_AWQ':
      return { weights: num(4, 'int', group(128)) };
    case 'W4A16_NVFP4':
      return { weights: num(4, 'float', group(16)) };
    case 'NVFP4_AWQ':
    case 'W4A8_AWQ':
      return { input_activations: num(8, 'float', group(128)), weights: num(4, 'float', group(128)) };
    case 'W8A8_SQ_PER_CHANNEL':
      return { input_activations: num(8, 'int'), weights: num(8, 'int', { strategy: 'channel' }) };
    case 'MXFP8':
      return { input_activations: num(8, 'float', group(32)), weights: num(8, 'float', group(32)) };
    default:
      return { input_activations: { ...num(4, 'float', group(32)), dynamic: true }, weights: num(4, 'float', group(32)) };
  }
}

/**
 * config.json["quantization_config"] (compressed-tensors style, quant_method "modelopt"; convert_hf_config.py
 * convert_hf_quant_config_format): one group targeting Linear, or for MIXED_PRECISION one group per distinct
 * layer config (in order of first appearance) targeting the sorted module names, plus quantized_layers.
 */
export function configQuantization(a: QuantAlgo, exclude: readonly string[], version: string): Record<string, unknown> {
  const groups: Record<string, Record<string, unknown>> = {};
  if (a.layers === null) {
    groups.group_0 = { ...configGroup(a.quantAlgo, a.groupSize), targets: ['Linear'] };
  } else {
    const byConfig = new Map<string, { cfg: LayerConfig; names: string[] }>();
    for (const [name, cfg] of a.layers) {
      const key = JSON.stringify(Object.entries(cfg).sort(([x], [y]) => (x < y ? -1 : 1)));
      if (!byConfig.has(key)) byConfig.set(key, { cfg, names: [] });
      byConfig.get(key)!.names.push(name);
    }
    [...byConfig.values()].forEach(({ cfg, names }, i) => {
      groups[`group_${i}`] = { ...configGroup(cfg.quant_algo, cfg.group_size ?? null), targets: [...names].sort() };
    });
  }
  return {
    config_groups: groups,
    ...(a.layers === null ? {} : { quantized_layers: Object.fromEntries(a.layers) }),
    ignore: a.layers === null ? [...exclude] : [],
    quant_algo: a.quantAlgo,
    ...(a.kvPreset === null ? {} : { kv_cache_scheme: num(a.kvPreset === 'fp8' ? 8 : 4, 'float') }),
    producer: { name: 'mopt', version },
    quant_method: 'modelopt',
  };
}
