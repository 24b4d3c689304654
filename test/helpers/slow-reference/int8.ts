// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// INT8 weights, per-channel symmetric (formats.md "INT8 SmoothQuant" weights): scale[out] = row amax/127,
// q = clamp(round_half_even(w/scale), -128, 127); export int8 [out, in].

import { absMax, amaxScale, checkMatrix, roundHalfEven, type Shape2 } from './common.js';

export interface Int8Meta { format: 'int8'; shape: [number, number] }
export interface Int8Quantized {
  /** int8 [out, in] row-major */
  codes: Int8Array;
  /** float32 [out] */
  scales: Float32Array;
  meta: Int8Meta;
}

export function quantize(w: Float32Array, shape: Shape2): Int8Quantized {
  checkMatrix('int8.quantize', w, shape);
  const [rows, cols] = shape;
  const scales = new Float32Array(rows);
  const codes = new Int8Array(w.length);
  for (let r = 0; r < rows; r++) {
    const scale = amaxScale('int8.quantize', absMax(w, r * cols, (r + 1) * cols), 127);
    scales[r] = scale;
    for (let i = r * cols; i < (r + 1) * cols; i++) {
      // torch divides in float32 (one rounding), then torch.round is half-to-even
      const q = roundHalfEven(Math.fround(w[i]! / scale));
      codes[i] = Math.min(Math.max(q, -128), 127);
    }
  }
  return { codes, scales, meta: { format: 'int8', shape: [rows, cols] } };
}

export function dequantize(q: Int8Quantized): Float32Array {
  const [, cols] = q.meta.shape;
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = q.codes[i]! * q.scales[Math.floor(i / cols)]!; // store rounds once
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2): Float32Array {
  return dequantize(quantize(w, shape));
}
