// W4A8 AWQ weights (formats.md "W4A8 AWQ", modelopt.md §1 `w4a8_awq_beta`): Model Optimizer applies a
// SequentialQuantizer to the weight: INT4 symmetric groups along the input dim, then FP8 E4M3 per tensor on
// the INT4 fake-quantized result. Conventions (docs/export.md "W4A8_AWQ" has the sources):
// - weight_scale   = the INT4 stage's scale, group amax/7, fp32 [out, in/group] (quant_utils.py
//   get_weight_scaling_factor -> get_scaling_factor(weight_quantizer[0]) = amax.float()/7; not divided by
//   weight_scale_2: TensorRT-LLM divides on load, W4A8_AWQ_LinearMethod);
// - weight_scale_2 = the FP8 stage's scale, amax/448 (fp32 scalar). Its amax is that of the UNQUANTIZED
//   weight: Model Optimizer calibrates both stages with quantization disabled (model_calib.py
//   enable_stats_collection), so the FP8 stage sees max |W|, not max |INT4(W)|; fused q/k/v and gate/up
//   take the max over the group (preprocess_linear_fusion);
// - weight = pack_int4_in_uint8(W, weight_scale): the same INT4 codes and packing as W4A16 AWQ.
// The deployed weight, and the fake-quantized one, is fp8_qdq(codes * weight_scale, weight_scale_2):
// dequantize() computes it from the stored codes and scales alone, so a loaded checkpoint reproduces the
// fake-quantized model exactly.

import { absMax, amaxScale, type Shape2 } from './common.js';
import * as int4 from './int4.js';
import * as fp8 from './fp8.js';

const E4M3_MAX = 448;

export interface W4a8Options { groupSize?: int4.Int4GroupSize }
export interface W4a8Meta { format: 'w4a8'; groupSize: int4.Int4GroupSize; shape: [number, number] }
export interface W4a8Quantized {
  /** uint8 [out/2, in], packed along the output dim like INT4 AWQ */
  codes: Uint8Array;
  /** weight_scale: fp32 [out, in/groupSize], group amax/7 */
  scales: Float32Array;
  /** weight_scale_2: fp32, max |W| (or the fused group's) / 448 */
  scale2: number;
  meta: W4a8Meta;
}

/** `stage2Amax`: the FP8 stage's amax (a fused sibling group's max |W|); default this weight's max |W|. */
export function quantize(w: Float32Array, shape: Shape2, opts: W4a8Options = {}, stage2Amax?: number): W4a8Quantized {
  const q4 = int4.quantize(w, shape, opts); // validates shape, finiteness, group size, even out dim
  const scale2 = amaxScale('w4a8.quantize', stage2Amax ?? absMax(w, 0, w.length), E4M3_MAX);
  return {
    codes: q4.codes, scales: q4.scales, scale2,
    meta: { format: 'w4a8', groupSize: q4.meta.groupSize, shape: [shape[0], shape[1]] },
  };
}

function asInt4(q: W4a8Quantized): int4.Int4Quantized {
  return { codes: q.codes, scales: q.scales, meta: { format: 'int4', groupSize: q.meta.groupSize, shape: q.meta.shape } };
}

/** The INT4 stage alone: codes · weight_scale. */
export function int4Stage(q: W4a8Quantized): Float32Array {
  return int4.dequantize(asInt4(q));
}

/**
 * Both stages: FP8 per-tensor QDQ (scale weight_scale_2) of codes · weight_scale, the weight the GEMM sees.
 * Same values as fp8.fakeQuantizeWithScale(int4Stage(q), scale2), with the FP8 stage evaluated once per
 * (group, INT4 value) instead of per element.
 */
export function dequantize(q: W4a8Quantized): Float32Array {
  const scale2 = q.scale2;
  return int4.dequantizeWith(asInt4(q), (v) => fp8.qdqWithScale(v, scale2));
}

/** SequentialQuantizer: INT4 group QDQ, then FP8 per-tensor QDQ with scale = (stage2Amax ?? max |w|)/448. */
export function fakeQuantize(w: Float32Array, shape: Shape2, opts: W4a8Options = {}, stage2Amax?: number): Float32Array {
  return dequantize(quantize(w, shape, opts, stage2Amax));
}
