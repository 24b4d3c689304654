// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// INT4 AWQ weights (formats.md "INT4 AWQ"): groups of `groupSize` (default 128) along the input dim,
// scale = group amax/7, q = clamp(round_half_even(w/scale), -8, 7).
// Export layout (formats.md "Packing on export", Model Optimizer pack_int4_in_uint8): uint8 [out/2, in],
// packed along the OUTPUT dim, byte[j, i] = (q[2j, i] & 0xF) | ((q[2j+1, i] & 0xF) << 4), two's complement
// nibbles. (Model Optimizer's internal INT4QTensor layout — +8 offset, even element high — is not exported.)

import { int4ToNibble, nibbleToInt4 } from './codecs.js';
import { absMax, amaxScale, checkMatrix, roundHalfEven, type Shape2 } from './common.js';

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
  const q = new Int8Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < ng; k++) {
      const start = r * cols + k * g;
      const scale = amaxScale('int4.quantize', opts.blockAmax?.[r * ng + k] ?? absMax(w, start, start + g), 7);
      scales[r * ng + k] = scale;
      for (let i = start; i < start + g; i++) {
        q[i] = Math.min(Math.max(roundHalfEven(Math.fround(w[i]! / scale)), -8), 7); // fp32 divide, then RNE
      }
    }
  }
  const codes = new Uint8Array((rows / 2) * cols);
  for (let j = 0; j < rows / 2; j++) {
    for (let i = 0; i < cols; i++) {
      codes[j * cols + i] = int4ToNibble(q[2 * j * cols + i]!) | (int4ToNibble(q[(2 * j + 1) * cols + i]!) << 4);
    }
  }
  return { codes, scales, meta: { format: 'int4', groupSize: g, shape: [rows, cols] } };
}

/** The INT4 values [out, in] of the packed codes (two output rows per byte: row 2j low nibble, 2j+1 high). */
export function int4Values(qt: Int4Quantized): Int8Array {
  const [rows, cols] = qt.meta.shape;
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < cols; i++) {
      const byte = qt.codes[(r >>> 1) * cols + i]!;
      q[r * cols + i] = nibbleToInt4((r & 1) === 0 ? byte & 0xf : byte >>> 4);
    }
  }
  return q;
}

export function dequantize(qt: Int4Quantized): Float32Array {
  const [rows, cols] = qt.meta.shape;
  const ng = cols / qt.meta.groupSize;
  const q = int4Values(qt);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < cols; i++) out[r * cols + i] = q[r * cols + i]! * qt.scales[r * ng + Math.floor(i / qt.meta.groupSize)]!;
  }
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: Int4Options = {}): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
