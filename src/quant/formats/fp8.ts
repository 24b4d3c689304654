// FP8 E4M3 weights (formats.md "FP8" / "FP8 per-channel"): weight_scale = amax/448 per tensor or per
// output row; q = e4m3(clamp(w/scale, ±448)); export layout float8_e4m3fn [out, in] (one byte per code).

import { E4M3_F32 } from '../../tensor/codecs.js';
import { absMax, amaxScale, checkMatrix, type Shape2 } from './common.js';
import { e4m3Quotients, e4m3Sat, f32Bits, roundBf16, scaledDecode } from './kernels.js';

const E4M3_MAX = 448;

export type Fp8Granularity = 'tensor' | 'channel';
/**
 * Precision of the intermediate arithmetic. 'float32' (default) is the export path: fp32 scales, w/scale in
 * fp32. 'bfloat16' reproduces Model Optimizer's FP8QTensor on bf16 weights, where torch keeps the scale,
 * the quotient and the dequantized product in bf16 (each rounded once to bf16).
 */
export type Fp8Arith = 'float32' | 'bfloat16';

export interface Fp8Options {
  granularity?: Fp8Granularity;
  arith?: Fp8Arith;
  /**
   * per-tensor only: the amax to scale by instead of this tensor's own (fused siblings such as q/k/v share
   * one weight scale on export: the max of their amaxes); values beyond it clamp to ±448
   */
  tensorAmax?: number;
}
export interface Fp8Meta { format: 'fp8'; granularity: Fp8Granularity; arith: Fp8Arith; shape: [number, number] }
export interface Fp8Quantized {
  /** float8_e4m3fn bytes, [out, in] row-major */
  codes: Uint8Array;
  /** weight_scale: length 1 (tensor) or out (channel) */
  scales: Float32Array;
  meta: Fp8Meta;
}

export function quantize(w: Float32Array, shape: Shape2, opts: Fp8Options = {}): Fp8Quantized {
  const granularity = opts.granularity ?? 'tensor';
  const arith = opts.arith ?? 'float32';
  checkMatrix('fp8.quantize', w, shape);
  if (opts.tensorAmax !== undefined && (granularity !== 'tensor' || !(opts.tensorAmax >= 0) || !Number.isFinite(opts.tensorAmax))) {
    throw new RangeError(`fp8.quantize: tensorAmax ${opts.tensorAmax} needs per-tensor granularity and a finite value >= 0`);
  }
  const [rows, cols] = shape;
  const scales = new Float32Array(granularity === 'tensor' ? 1 : rows);
  for (let s = 0; s < scales.length; s++) {
    const amax = granularity === 'tensor' ? (opts.tensorAmax ?? absMax(w, 0, w.length)) : absMax(w, s * cols, (s + 1) * cols);
    // amax/448 rounded once to the working precision (bf16 scale in bf16 mode; amaxScale rounds to fp32
    // first, and fp32 → bf16 can round twice, so bf16 mode divides in double and rounds once).
    scales[s] = arith === 'float32' ? amaxScale('fp8.quantize', amax, E4M3_MAX) : amax === 0 ? 1 : roundBf16(amax / E4M3_MAX);
  }
  // codes = e4m3(clamp(v / scale, ±448)), the quotient rounded to the working precision like torch
  const codes = new Uint8Array(w.length);
  const bf16 = arith === 'bfloat16';
  if (granularity === 'tensor') e4m3Quotients(w, 0, w.length, scales[0]!, codes, bf16);
  else for (let r = 0; r < rows; r++) e4m3Quotients(w, r * cols, (r + 1) * cols, scales[r]!, codes, bf16);
  return { codes, scales, meta: { format: 'fp8', granularity, arith, shape: [rows, cols] } };
}

/** FP8 quantize -> dequantize of one value with an fp32 scale, in float32 (fakeQuantizeWithScale's element). */
export function qdqWithScale(v: number, scale: number): number {
  const q = v / scale;
  return Math.fround(E4M3_F32[e4m3Sat(f32Bits(q), Math.fround(q))]! * scale);
}

/**
 * Per-tensor FP8 quantize -> dequantize with a given fp32 scale (not an amax): W4A8's second stage, which a
 * loader rebuilds from the stored weight_scale_2 alone. Same arithmetic as quantize + dequantize in float32.
 */
export function fakeQuantizeWithScale(w: Float32Array, scale: number): Float32Array {
  const codes = new Uint8Array(w.length);
  e4m3Quotients(w, 0, w.length, scale, codes, false);
  const out = new Float32Array(w.length);
  scaledDecode(E4M3_F32, codes, 0, w.length, scale, out, false);
  return out;
}

export function dequantize(q: Fp8Quantized): Float32Array {
  const [, cols] = q.meta.shape;
  const bf16 = q.meta.arith === 'bfloat16';
  const n = q.codes.length;
  const out = new Float32Array(n);
  // e4m3 value times scale, one rounding to the working precision
  if (q.meta.granularity === 'tensor') scaledDecode(E4M3_F32, q.codes, 0, n, q.scales[0]!, out, bf16);
  else for (let r = 0; r * cols < n; r++) scaledDecode(E4M3_F32, q.codes, r * cols, Math.min((r + 1) * cols, n), q.scales[r]!, out, bf16);
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: Fp8Options = {}): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
