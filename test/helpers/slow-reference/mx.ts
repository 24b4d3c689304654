// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// MXFP8 / MXFP4 weights (formats.md "MXFP8 / MXFP4", modelopt.md §2): blocks of 32 along the input dim,
// scale = 2^clamp(ceil(log2(block_amax / elem_max)), -127, 127), stored as E8M0 (code = exponent + 127).
// This is Model Optimizer's non-clipping rule (block_amax / scale ≤ elem_max), NOT the OCP rule
// floor(log2(amax)) - emax_elem. block_amax / elem_max is divided in fp32 as torch does.
// All-zero blocks: log2(0) = -inf clamps to -127, i.e. E8M0 code 0 (scale 2^-127); codes are all 0. That
// is what the rule itself gives, so no special case is needed beyond avoiding log2(0).
// Elements: x / scale (exact: division by a power of two, rounded once to fp32 if it lands in subnormals),
// then e4m3 (RNE, saturating; elem_max 448) or e2m1 (RNE per formats.md; elem_max 6).
// Export: MXFP8 codes float8_e4m3fn [out, in]; MXFP4 codes uint8 [out, in/2], element 2k in the low nibble;
// scales uint8 E8M0 [out, in/32].

import {
  e2m1ToF32, e4m3ToF32, e8m0ToF32, f32ToE2M1, f32ToE4M3, f32ToE8M0, packNibbles, unpackNibbles,
} from './codecs.js';
import { absMax, checkMatrix, type Shape2 } from './common.js';

const BLOCK = 32;
export type MxElement = 'mxfp8' | 'mxfp4';
export interface MxOptions { element: MxElement }
export interface MxMeta { format: MxElement; blockSize: 32; shape: [number, number] }
export interface MxQuantized {
  /** mxfp8: e4m3 bytes [out, in]; mxfp4: uint8 [out, in/2] */
  codes: Uint8Array;
  /** E8M0 codes [out, in/32] */
  scales: Uint8Array;
  meta: MxMeta;
}

const ELEM_MAX: { readonly [K in MxElement]: number } = { mxfp8: 448, mxfp4: 6 };

/** E8M0 code of 2^clamp(ceil(log2(v)), -127, 127) for v ≥ 0. */
export function ceilScaleCode(v: number): number {
  if (v <= 2 ** -127) return 0; // ceil(log2 v) ≤ -127 (incl. v = 0 → -inf): clamp to -127
  if (v < 2 ** -126) return 1; // (2^-127, 2^-126): ceil = -126
  // f32ToE8M0 'up' = next power of two at or above v, i.e. code ceil(log2 v) + 127; saturates at 254 (2^127)
  return f32ToE8M0(v, 'up', true);
}

export function quantize(w: Float32Array, shape: Shape2, opts: MxOptions): MxQuantized {
  const el = opts.element;
  checkMatrix(`${el}.quantize`, w, shape, BLOCK);
  const [rows, cols] = shape;
  const nb = w.length / BLOCK;
  const scales = new Uint8Array(nb);
  const elems = new Uint8Array(w.length);
  for (let b = 0; b < nb; b++) {
    const code = ceilScaleCode(Math.fround(absMax(w, b * BLOCK, (b + 1) * BLOCK) / ELEM_MAX[el]));
    scales[b] = code;
    const scale = e8m0ToF32(code);
    for (let i = b * BLOCK; i < (b + 1) * BLOCK; i++) {
      const x = Math.fround(w[i]! / scale);
      elems[i] = el === 'mxfp8' ? f32ToE4M3(x, true) : f32ToE2M1(x);
    }
  }
  const codes = el === 'mxfp8' ? elems : packNibbles(elems);
  return { codes, scales, meta: { format: el, blockSize: BLOCK, shape: [rows, cols] } };
}

export function dequantize(q: MxQuantized): Float32Array {
  const n = q.meta.shape[0] * q.meta.shape[1];
  const fp8 = q.meta.format === 'mxfp8';
  const elems = fp8 ? q.codes : unpackNibbles(q.codes, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = fp8 ? e4m3ToF32(elems[i]!) : e2m1ToF32(elems[i]!);
    out[i] = v * e8m0ToF32(q.scales[Math.floor(i / BLOCK)]!); // power-of-two product, one fp32 rounding
  }
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: MxOptions): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
