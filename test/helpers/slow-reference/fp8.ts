// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// FP8 E4M3 weights (formats.md "FP8" / "FP8 per-channel"): weight_scale = amax/448 per tensor or per
// output row; q = e4m3(clamp(w/scale, ±448)); export layout float8_e4m3fn [out, in] (one byte per code).

import { bf16BitsToF32, e4m3ToF32, f32ToBf16Bits, f32ToE4M3 } from './codecs.js';
import { absMax, amaxScale, checkMatrix, type Shape2 } from './common.js';

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

function rounder(arith: Fp8Arith): (x: number) => number {
  return arith === 'float32' ? Math.fround : (x) => bf16BitsToF32(f32ToBf16Bits(x));
}

export function quantize(w: Float32Array, shape: Shape2, opts: Fp8Options = {}): Fp8Quantized {
  const granularity = opts.granularity ?? 'tensor';
  const arith = opts.arith ?? 'float32';
  checkMatrix('fp8.quantize', w, shape);
  if (opts.tensorAmax !== undefined && (granularity !== 'tensor' || !(opts.tensorAmax >= 0) || !Number.isFinite(opts.tensorAmax))) {
    throw new RangeError(`fp8.quantize: tensorAmax ${opts.tensorAmax} needs per-tensor granularity and a finite value >= 0`);
  }
  const [rows, cols] = shape;
  const R = rounder(arith);
  const scales = new Float32Array(granularity === 'tensor' ? 1 : rows);
  for (let s = 0; s < scales.length; s++) {
    const amax = granularity === 'tensor' ? (opts.tensorAmax ?? absMax(w, 0, w.length)) : absMax(w, s * cols, (s + 1) * cols);
    // amax/448 rounded once to the working precision (bf16 scale in bf16 mode; amaxScale rounds to fp32
    // first, and fp32 → bf16 can round twice, so bf16 mode divides in double and rounds once).
    scales[s] = arith === 'float32' ? amaxScale('fp8.quantize', amax, E4M3_MAX) : amax === 0 ? 1 : R(amax / E4M3_MAX);
  }
  const codes = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) codes[i] = e4m3Code(w[i]!, scales[granularity === 'tensor' ? 0 : Math.floor(i / cols)]!, R);
  return { codes, scales, meta: { format: 'fp8', granularity, arith, shape: [rows, cols] } };
}

/** The e4m3 code of v / scale: the quotient rounded to the working precision like torch, clamped to ±448, cast with RNE. */
function e4m3Code(v: number, scale: number, R: (x: number) => number): number {
  return f32ToE4M3(Math.min(Math.max(R(v / scale), -E4M3_MAX), E4M3_MAX), true);
}

/**
 * Per-tensor FP8 quantize -> dequantize with a given fp32 scale (not an amax): W4A8's second stage, which a
 * loader rebuilds from the stored weight_scale_2 alone. Same arithmetic as quantize + dequantize in float32.
 */
export function fakeQuantizeWithScale(w: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = Math.fround(e4m3ToF32(e4m3Code(w[i]!, scale, Math.fround)) * scale);
  return out;
}

export function dequantize(q: Fp8Quantized): Float32Array {
  const [, cols] = q.meta.shape;
  const R = rounder(q.meta.arith);
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) {
    const scale = q.scales[q.meta.granularity === 'tensor' ? 0 : Math.floor(i / cols)]!;
    out[i] = R(e4m3ToF32(q.codes[i]!) * scale); // e4m3 value times scale, one rounding
  }
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: Fp8Options = {}): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
