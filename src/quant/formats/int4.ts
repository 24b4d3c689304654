// INT4 AWQ weights (formats.md "INT4 AWQ"): groups of `groupSize` (default 128) along the input dim,
// scale = group amax/7, q = clamp(round_half_even(w/scale), -8, 7).
// Export layout (formats.md "Packing on export", Model Optimizer pack_int4_in_uint8): uint8 [out/2, in],
// packed along the OUTPUT dim, byte[j, i] = (q[2j, i] & 0xF) | ((q[2j+1, i] & 0xF) << 4), two's complement
// nibbles. (Model Optimizer's internal INT4QTensor layout — +8 offset, even element high — is not exported.)

import { absMax, amaxScale, checkMatrix, type Shape2 } from './common.js';
import { roundClamp } from './kernels.js';

export type Int4GroupSize = 32 | 64 | 128;
export interface Int4Options {
  groupSize?: Int4GroupSize;
  /** static group amax values [out * in/groupSize] instead of each group's own max |w| (GPTQ, MSE, AWQ clip) */
  blockAmax?: Float32Array;
}
export interface Int4Meta { format: 'int4'; groupSize: Int4GroupSize; shape: [number, number] }
export interface Int4Quantized {
  /** uint8 [out/2, in] */
  codes: Uint8Array;
  /** float32 [out, in/groupSize] */
  scales: Float32Array;
  meta: Int4Meta;
}

export function quantize(w: Float32Array, shape: Shape2, opts: Int4Options = {}): Int4Quantized {
  const g = opts.groupSize ?? 128;
  if (g !== 32 && g !== 64 && g !== 128) throw new RangeError(`int4.quantize: groupSize ${String(g)} not in {32, 64, 128}`);
  // out must be even: the export packs row pairs into one byte row
  checkMatrix('int4.quantize', w, shape, g, 2);
  const [rows, cols] = shape;
  const ng = cols / g;
  const scales = new Float32Array(rows * ng);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < ng; k++) {
      const start = r * cols + k * g;
      scales[r * ng + k] = amaxScale('int4.quantize', opts.blockAmax?.[r * ng + k] ?? absMax(w, start, start + g), 7);
    }
  }
  // q = clamp(rne(fp32(w / scale)), -8, 7), written straight into the packed layout: rows 2j and 2j+1 share
  // byte row j. `& 0xf` is the two's-complement nibble (a NaN quotient from a NaN static amax gives 0, as
  // storing it in an Int8Array did).
  const codes = new Uint8Array((rows / 2) * cols);
  for (let j = 0; j < rows / 2; j++) {
    const even = 2 * j * cols;
    const odd = even + cols;
    for (let k = 0; k < ng; k++) {
      const se = scales[2 * j * ng + k]!;
      const so = scales[(2 * j + 1) * ng + k]!;
      for (let i = k * g; i < (k + 1) * g; i++) {
        const lo = roundClamp(Math.fround(w[even + i]! / se), -8, 7) & 0xf;
        codes[j * cols + i] = lo | ((roundClamp(Math.fround(w[odd + i]! / so), -8, 7) & 0xf) << 4);
      }
    }
  }
  return { codes, scales, meta: { format: 'int4', groupSize: g, shape: [rows, cols] } };
}

/** The INT4 values [out, in] of the packed codes (two output rows per byte: row 2j low nibble, 2j+1 high). */
export function int4Values(qt: Int4Quantized): Int8Array {
  const [rows, cols] = qt.meta.shape;
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const shift = (r & 1) << 2;
    const src = (r >>> 1) * cols;
    // ((n ^ 8) - 8): the signed value of nibble n
    for (let i = 0; i < cols; i++) q[r * cols + i] = (((qt.codes[src + i]! >>> shift) & 0xf) ^ 8) - 8;
  }
  return q;
}

/**
 * out[r, i] = stage(q[r, i] · scale[r, group]) with the product rounded to float32, for the INT4 values q of
 * the packed codes; `stage` (W4A8's FP8 stage) maps that float32 value, default none. Each group has only 16
 * possible outputs, so they are computed once per group into a table and the elements copied from it by bit
 * pattern (NaNs from NaN scales included).
 */
export function dequantizeWith(qt: Int4Quantized, stage?: (v: number) => number): Float32Array {
  const [rows, cols] = qt.meta.shape;
  const g = qt.meta.groupSize;
  const ng = cols / g;
  const out = new Float32Array(rows * cols);
  const out32 = new Uint32Array(out.buffer);
  const lut = new Float32Array(16);
  const lut32 = new Uint32Array(lut.buffer);
  for (let r = 0; r < rows; r++) {
    const shift = (r & 1) << 2;
    const src = (r >>> 1) * cols;
    for (let k = 0; k < ng; k++) {
      const scale = qt.scales[r * ng + k]!;
      for (let n = 0; n < 16; n++) lut[n] = stage ? stage(Math.fround(((n ^ 8) - 8) * scale)) : ((n ^ 8) - 8) * scale;
      for (let i = k * g; i < (k + 1) * g; i++) out32[r * cols + i] = lut32[(qt.codes[src + i]! >>> shift) & 0xf]!;
    }
  }
  return out;
}

export function dequantize(qt: Int4Quantized): Float32Array {
  return dequantizeWith(qt);
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: Int4Options = {}): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
