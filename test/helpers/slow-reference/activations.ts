// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// Activation quantizers (formats.md "Quantization recipes", activations column; modelopt.md §2). Each takes
// an activation matrix x [tokens, hidden] (quantization blocks run along the last, hidden, dim) and returns
// the fake-quantized (quantize → dequantize) tensor plus the values an export would write:
// - fp8 static per-tensor: input_scale = amax/448 from the CALIBRATED amax (values beyond it clamp to ±448);
// - fp8 dynamic per-token: per row scale = row amax/448, recomputed every call (nothing exported);
// - int8 static per-tensor: input_scale = amax/127, q = clamp(rne(x/scale), -128, 127);
// - nvfp4 dynamic block 16 with a calibrated global input_scale = amax/2688: block scales are computed per
//   call from the block amax, exactly like NVFP4 weights but with s2 from the calibrated amax, so a block
//   louder than the calibration saturates its e4m3 scale at 448 and its elements at e2m1 ±6;
// - mxfp8 / mxfp4 dynamic: the MX weight rule (mx.ts) applied per call; E8M0 scales returned, not exported.
// Arithmetic is fp32 like the export path (fp32 scales, one rounding per division / product).

import { e2m1ToF32, e4m3ToF32, f32ToE2M1, f32ToE4M3 } from './codecs.js';
import { absMax, amaxScale, checkMatrix, roundHalfEven, type Shape2 } from './common.js';
import * as fp8 from './fp8.js';
import * as mx from './mx.js';

const E4M3_MAX = 448;
const NVFP4_BLOCK = 16;
const NVFP4_MIN_SCALE = 2 ** -9;

export type ActCalib =
  | { format: 'fp8'; amax: number }
  | { format: 'fp8-per-token' }
  | { format: 'int8'; amax: number }
  | { format: 'nvfp4'; amax: number }
  | { format: 'mxfp8' }
  | { format: 'mxfp4' };

export interface ActQuantized {
  /** fake-quantized activations, same shape as x */
  y: Float32Array;
  /** exported `input_scale` (fp32) for static formats; null for purely dynamic ones */
  inputScale: number | null;
  /** per-call dynamic scales: fp32 [tokens] (fp8 per-token), e4m3 bytes [tokens, hidden/16] (nvfp4),
   *  E8M0 bytes [tokens, hidden/32] (mx); null for per-tensor static formats */
  scales: Float32Array | Uint8Array | null;
}

/** A calibrated amax must be a finite non-negative number (MaxCalibrator asserts on NaN/inf too). */
export function checkAmax(fn: string, amax: number): void {
  if (!Number.isFinite(amax) || amax < 0) throw new RangeError(`${fn}: calibrated amax ${amax} must be finite and >= 0`);
}

/**
 * NVFP4 block-16 fake quantization of finite x with global scale s2 (fp32). Same arithmetic and export
 * guards as nvfp4.ts weights (zero block scale → 1, clamp to [2^-9, 448], e4m3 RNE), so activations and KV
 * see the numbers the weights would. Returns the dequantized values and the e4m3 block-scale codes.
 */
export function nvfp4Blocks(x: Float32Array, s2: number): { y: Float32Array; scales: Uint8Array } {
  const denom = Math.fround(6 * s2);
  const nb = x.length / NVFP4_BLOCK;
  const scales = new Uint8Array(nb);
  const y = new Float32Array(x.length);
  for (let b = 0; b < nb; b++) {
    let sb = Math.fround(absMax(x, b * NVFP4_BLOCK, (b + 1) * NVFP4_BLOCK) / denom);
    if (sb === 0) sb = 1;
    sb = Math.min(Math.max(sb, NVFP4_MIN_SCALE), E4M3_MAX);
    scales[b] = f32ToE4M3(sb, true);
    const div = Math.fround(e4m3ToF32(scales[b]!) * s2);
    for (let i = b * NVFP4_BLOCK; i < (b + 1) * NVFP4_BLOCK; i++) {
      y[i] = e2m1ToF32(f32ToE2M1(Math.fround(x[i]! / div))) * div;
    }
  }
  return { y, scales };
}

function fp8Static(x: Float32Array, scale: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const q = Math.fround(x[i]! / scale);
    y[i] = Math.fround(e4m3ToF32(f32ToE4M3(Math.min(Math.max(q, -E4M3_MAX), E4M3_MAX), true)) * scale);
  }

  return y;
}

export function fakeQuantize(x: Float32Array, shape: Shape2, calib: ActCalib): ActQuantized {
  const fn = `activations.${calib.format}`;
  const blockCols = calib.format === 'nvfp4' ? NVFP4_BLOCK : calib.format === 'mxfp8' || calib.format === 'mxfp4' ? 32 : 1;
  checkMatrix(fn, x, shape, blockCols);
  switch (calib.format) {
    case 'fp8': {
      checkAmax(fn, calib.amax);
      const s = amaxScale(fn, calib.amax, E4M3_MAX);
      return { y: fp8Static(x, s), inputScale: s, scales: null };
    }
    case 'fp8-per-token': {
      // per-token = fp8 per-row on the [tokens, hidden] matrix
      const q = fp8.quantize(x, shape, { granularity: 'channel' });
      return { y: fp8.dequantize(q), inputScale: null, scales: q.scales };
    }
    case 'int8': {
      checkAmax(fn, calib.amax);
      const s = amaxScale(fn, calib.amax, 127);
      const y = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) {
        y[i] = Math.min(Math.max(roundHalfEven(Math.fround(x[i]! / s)), -128), 127) * s;
      }
      return { y, inputScale: s, scales: null };
    }
    case 'nvfp4': {
      checkAmax(fn, calib.amax);
      const s2 = amaxScale(fn, calib.amax, 6 * E4M3_MAX); // input_scale = amax/2688
      const r = nvfp4Blocks(x, s2);
      return { y: r.y, inputScale: s2, scales: r.scales };
    }
    case 'mxfp8':
    case 'mxfp4': {
      const q = mx.quantize(x, shape, { element: calib.format });
      return { y: mx.dequantize(q), inputScale: null, scales: q.scales };
    }
  }
}
