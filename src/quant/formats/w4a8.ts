// W4A8 AWQ weights (formats.md "W4A8 AWQ", modelopt.md §1 `w4a8_awq_beta`): Model Optimizer applies a
// SequentialQuantizer to the weight: first INT4 symmetric groups of 128 along the input dim, then FP8 E4M3
// per-tensor on the INT4 fake-quantized result. The scale split, from Model Optimizer
// `export/quant_utils.py` (get_weight_scaling_factor / get_weight_scaling_factor_2 / to_quantized_weight):
// - weight_scale   = quantizer[0]'s scale = group amax/7, fp32 [out, in/group] (NOT e4m3: the first
//   quantizer is INT4, and get_scaling_factor returns amax.float()/maxbound);
// - weight_scale_2 = quantizer[1]'s scale = amax/448 (fp32 scalar), where quantizer[1]'s amax is
//   calibrated on quantizer[0]'s output, i.e. the abs-max of the INT4-dequantized weight;
// - weight = pack_int4_in_uint8(weight, weight_scale): the same INT4 codes as W4A16 AWQ, packed along the
//   OUTPUT dim (int4.ts does exactly this, so it is reused).
// fakeQuantize reproduces the sequential fake quantization: fp8_per_tensor(int4(w)).
// Open (issue #4): whether unified_export_hf.py rescales weight_scale by weight_scale_2 before writing a
// W4A8 checkpoint was not checked; the export issue must settle it against Model Optimizer's source.

import { absMax, amaxScale, type Shape2 } from './common.js';
import * as int4 from './int4.js';
import * as fp8 from './fp8.js';

export interface W4a8Options { groupSize?: int4.Int4GroupSize }
export interface W4a8Meta { format: 'w4a8'; groupSize: int4.Int4GroupSize; shape: [number, number] }
export interface W4a8Quantized {
  /** uint8 [out/2, in], packed along the output dim like INT4 AWQ */
  codes: Uint8Array;
  /** weight_scale: fp32 [out, in/groupSize], group amax/7 */
  scales: Float32Array;
  /** weight_scale_2: fp32, abs-max of the INT4-dequantized weight / 448 */
  scale2: number;
  meta: W4a8Meta;
}

export function quantize(w: Float32Array, shape: Shape2, opts: W4a8Options = {}): W4a8Quantized {
  const q4 = int4.quantize(w, shape, opts); // validates shape, finiteness, group size, even out dim
  const wq = int4.dequantize(q4);
  const scale2 = amaxScale('w4a8.quantize', absMax(wq, 0, wq.length), 448);
  return {
    codes: q4.codes, scales: q4.scales, scale2,
    meta: { format: 'w4a8', groupSize: q4.meta.groupSize, shape: [shape[0], shape[1]] },
  };
}

/** int4 · weight_scale: the stored weight (weight_scale_2 only feeds the FP8 stage, see fakeQuantize). */
export function dequantize(q: W4a8Quantized): Float32Array {
  return int4.dequantize({ codes: q.codes, scales: q.scales, meta: { format: 'int4', groupSize: q.meta.groupSize, shape: q.meta.shape } });
}

/**
 * SequentialQuantizer: INT4 group QDQ, then FP8 per-tensor QDQ with scale = amax(INT4 QDQ)/448, or
 * `stage2Amax`/448 when fused siblings share weight_scale_2.
 */
export function fakeQuantize(w: Float32Array, shape: Shape2, opts: W4a8Options = {}, stage2Amax?: number): Float32Array {
  const wq = int4.fakeQuantize(w, shape, opts);
  return fp8.fakeQuantize(wq, shape, { granularity: 'tensor', ...(stage2Amax === undefined ? {} : { tensorAmax: stage2Amax }) });
}
