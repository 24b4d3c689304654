// Model Optimizer's unified Hugging Face checkpoint (../shared/docs/formats.md, modelopt.md §3): which
// quant_algo a preset exports as, the tensors of one quantized Linear (names, dtypes, shapes, packing),
// and hf_quant_config.json / config.json["quantization_config"]. Reading goes through the same tables,
// so what the exporter writes and what the loader accepts cannot drift apart.

import type { RawTensor } from '../io/raw-tensor.js';
import type { PresetName, KvPresetName } from '../quant/recipes/presets.js';
import type { QuantizedWeight, WeightScheme } from '../quant/scheme.js';
import type { Fp8Quantized } from '../quant/formats/fp8.js';
import type { Int8Quantized } from '../quant/formats/int8.js';
import type { Int4Quantized } from '../quant/formats/int4.js';
import type { Nvfp4Quantized } from '../quant/formats/nvfp4.js';
import type { MxQuantized } from '../quant/formats/mx.js';
import { UserError } from '../util/errors.js';

export const HF_QUANT_CONFIG = 'hf_quant_config.json';

/** What a preset exports as. Presets missing here are not exportable yet (the exporter says so). */
const ALGO: Partial<Record<PresetName, string>> = {
  fp8: 'FP8',
  int8_sq: 'W8A8_SQ_PER_CHANNEL',
  int4_awq: 'W4A16_AWQ',
  nvfp4: 'NVFP4',
  nvfp4_awq: 'NVFP4_AWQ',
  w4a16_nvfp4: 'W4A16_NVFP4',
  mxfp8: 'MXFP8',
  mxfp4: 'MXFP4',
};
const KV_ALGO: Record<KvPresetName, string> = { fp8: 'FP8', nvfp4: 'NVFP4' };

/** Bound that turns a calibrated amax into the exported input_scale / k_scale / v_scale (scale = amax / bound). */
export const INPUT_BOUND = { fp8: 448, int8: 127, nvfp4: 6 * 448 } as const;
/** Model Optimizer exports K/V scales as amax / 448 for FP8 and NVFP4 caches alike. */
export const KV_BOUND = 448;

export interface QuantAlgo {
  preset: PresetName;
  quantAlgo: string;
  /** INT4 group size (AWQ), 16 (NVFP4), 32 (MX) */
  groupSize: number | null;
  kvPreset: KvPresetName | null;
}

export function quantAlgoOf(preset: string | null, kv: string | null, int4Group: number | null): QuantAlgo {
  const algo = preset === null ? undefined : ALGO[preset as PresetName];
  if (preset === null || algo === undefined) {
    const which = preset === null ? 'a custom recipe (it would export as MIXED_PRECISION)' : `the ${preset} preset`;
    throw new UserError(`export of ${which} is not implemented yet; presets that export: ${Object.keys(ALGO).join(', ')}`);
  }
  const groupSize = algo.startsWith('W4A16_AWQ') ? int4Group ?? 128 : algo.includes('NVFP4') ? 16 : algo.startsWith('MXFP') ? 32 : null;
  return { preset: preset as PresetName, quantAlgo: algo, groupSize, kvPreset: (kv as KvPresetName | null) ?? null };
}

/** The preset (and KV preset, INT4 group size) an hf_quant_config.json describes. */
export function parseQuantAlgo(cfg: unknown, path: string): QuantAlgo {
  const q = (cfg as { quantization?: Record<string, unknown> } | null)?.quantization;
  const algo = q?.quant_algo;
  const preset = (Object.keys(ALGO) as PresetName[]).find((p) => ALGO[p] === algo);
  if (q === undefined || preset === undefined) {
    throw new UserError(`${path}: quant_algo ${JSON.stringify(algo)} is not one mopt loads (${Object.values(ALGO).join(', ')})`);
  }
  const kvAlgo = q.kv_cache_quant_algo ?? null;
  const kvPreset = kvAlgo === null ? null : (Object.keys(KV_ALGO) as KvPresetName[]).find((k) => KV_ALGO[k] === kvAlgo);
  if (kvPreset === undefined) throw new UserError(`${path}: kv_cache_quant_algo ${JSON.stringify(kvAlgo)} is not one mopt loads (FP8, NVFP4)`);
  const g = q.group_size;
  return { preset, quantAlgo: algo as string, groupSize: typeof g === 'number' ? g : null, kvPreset };
}

/** hf_quant_config.json */
export function hfQuantConfig(a: QuantAlgo, exclude: readonly string[], version: string): Record<string, unknown> {
  return {
    producer: { name: 'mopt', version },
    quantization: {
      quant_algo: a.quantAlgo,
      kv_cache_quant_algo: a.kvPreset === null ? null : KV_ALGO[a.kvPreset],
      ...(a.groupSize === null ? {} : { group_size: a.groupSize }),
      ...(a.quantAlgo.includes('AWQ') ? { has_zero_point: false, pre_quant_scale: true } : {}),
      exclude_modules: [...exclude],
    },
  };
}

/** config.json["quantization_config"] (compressed-tensors style, quant_method "modelopt"). */
export function configQuantization(a: QuantAlgo, exclude: readonly string[], version: string): Record<string, unknown> {
  const float = (bits: number, group?: number): Record<string, unknown> => ({ dynamic: false, num_bits: bits, type: 'float', ...(group ? { group_size: group } : {}) });
  const groups: Record<string, { weights: Record<string, unknown>; input_activations?: Record<string, unknown> }> = {
    FP8: { weights: float(8), input_activations: float(8) },
    W8A8_SQ_PER_CHANNEL: { weights: { dynamic: false, num_bits: 8, type: 'int' }, input_activations: { dynamic: false, num_bits: 8, type: 'int' } },
    W4A16_AWQ: { weights: { dynamic: false, num_bits: 4, type: 'int', group_size: a.groupSize } },
    NVFP4: { weights: float(4, 16), input_activations: float(4, 16) },
    NVFP4_AWQ: { weights: float(4, 16), input_activations: float(4, 16) },
    W4A16_NVFP4: { weights: float(4, 16) },
    MXFP8: { weights: float(8, 32), input_activations: { ...float(8, 32), dynamic: true } },
    MXFP4: { weights: float(4, 32), input_activations: { ...float(4, 32), dynamic: true } },
  };
  return {
    config_groups: { group_0: { ...groups[a.quantAlgo], targets: ['Linear'] } },
    ignore: [...exclude],
    quant_algo: a.quantAlgo,
    ...(a.kvPreset === null ? {} : { kv_cache_scheme: { dynamic: false, num_bits: a.kvPreset === 'fp8' ? 8 : 4, type: 'float' } }),
    producer: { name: 'mopt', version },
    quant_method: 'modelopt',
  };
}

const f32 = (v: number): RawTensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(v) });

/** `<m>.weight`, `<m>.weight_scale` and `<m>.weight_scale_2` of a quantized weight, by suffix. */
export function weightTensors(q: QuantizedWeight): Record<string, RawTensor> {
  const [out, inp] = q.meta.shape;
  switch (q.meta.format) {
    case 'fp8': {
      const w = q as Fp8Quantized;
      const scale: RawTensor = w.meta.granularity === 'tensor' ? f32(w.scales[0]!) : { dtype: 'float32', shape: [out], data: w.scales };
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp], data: w.codes }, weight_scale: scale };
    }
    case 'int8': {
      const w = q as Int8Quantized;
      return { weight: { dtype: 'int8', shape: [out, inp], data: w.codes }, weight_scale: { dtype: 'float32', shape: [out], data: w.scales } };
    }
    case 'int4': {
      const w = q as Int4Quantized;
      return { weight: { dtype: 'uint8', shape: [out / 2, inp], data: w.codes }, weight_scale: { dtype: 'float32', shape: [out, inp / w.meta.groupSize], data: w.scales } };
    }
    case 'nvfp4': {
      const w = q as Nvfp4Quantized;
      return {
        weight: { dtype: 'uint8', shape: [out, inp / 2], data: w.codes },
        weight_scale: { dtype: 'float8_e4m3fn', shape: [out, inp / 16], data: w.scales },
        weight_scale_2: f32(w.scale2),
      };
    }
    case 'mxfp8': {
      const w = q as MxQuantized;
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp], data: w.codes }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32], data: w.scales } };
    }
    case 'mxfp4': {
      // e2m1 pairs along the input dim (element 2k in the low nibble), one E8M0 scale per 32 (Model Optimizer's MXFP4QTensor)
      const w = q as MxQuantized;
      return { weight: { dtype: 'uint8', shape: [out, inp / 2], data: w.codes }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32], data: w.scales } };
    }
    default:
      throw new UserError(`export of ${q.meta.format} weights is not implemented yet`);
  }
}

/** What a tensor must look like: dtype and shape. */
export interface TensorSpec {
  dtype: RawTensor['dtype'];
  shape: number[];
}

/** The tensors a quantized Linear of this scheme must have in the checkpoint (besides input / pre-quant scales). */
export function weightSpecs(s: WeightScheme, shape: [number, number]): Record<string, TensorSpec> {
  const [out, inp] = shape;
  switch (s.kind) {
    case 'fp8':
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp] }, weight_scale: { dtype: 'float32', shape: s.granularity === 'tensor' ? [] : [out] } };
    case 'int8':
      return { weight: { dtype: 'int8', shape: [out, inp] }, weight_scale: { dtype: 'float32', shape: [out] } };
    case 'int4':
      return { weight: { dtype: 'uint8', shape: [out / 2, inp] }, weight_scale: { dtype: 'float32', shape: [out, inp / s.groupSize] } };
    case 'nvfp4':
      return { weight: { dtype: 'uint8', shape: [out, inp / 2] }, weight_scale: { dtype: 'float8_e4m3fn', shape: [out, inp / 16] }, weight_scale_2: { dtype: 'float32', shape: [] } };
    case 'mxfp8':
      return { weight: { dtype: 'float8_e4m3fn', shape: [out, inp] }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32] } };
    case 'mxfp4':
      return { weight: { dtype: 'uint8', shape: [out, inp / 2] }, weight_scale: { dtype: 'uint8', shape: [out, inp / 32] } };
    default:
      throw new UserError(`loading ${s.kind} weights from a Model Optimizer checkpoint is not implemented yet`);
  }
}

/** The codes and scales of a weight read back from its tensors (checked against weightSpecs first). */
export function weightFromTensors(s: WeightScheme, shape: [number, number], t: Record<string, RawTensor>): QuantizedWeight {
  switch (s.kind) {
    case 'fp8':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'fp8', granularity: s.granularity, arith: 'float32', shape } };
    case 'int8':
      return { codes: t.weight!.data as Int8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'int8', shape } };
    case 'int4':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Float32Array, meta: { format: 'int4', groupSize: s.groupSize, shape } };
    case 'nvfp4':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Uint8Array, scale2: (t.weight_scale_2!.data as Float32Array)[0]!, meta: { format: 'nvfp4', blockSize: 16, shape } };
    case 'mxfp8':
    case 'mxfp4':
      return { codes: t.weight!.data as Uint8Array, scales: t.weight_scale!.data as Uint8Array, meta: { format: s.kind, blockSize: 32, shape } };
    default:
      throw new UserError(`loading ${s.kind} weights from a Model Optimizer checkpoint is not implemented yet`);
  }
}
