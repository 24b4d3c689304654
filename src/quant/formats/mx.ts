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

import { checkPackedLength, E2M1_F32, E4M3_F32, E8M0_F64 } from '../../tensor/codecs.js';
import { absMax, checkMatrix, type Shape2 } from './common.js';
import { e2m1PackedQuotients, e4m3Quotients, packedScaledDecode, scaledDecode } from './kernels.js';

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

const F64 = new Float64Array(1);
const F64W = new Uint32Array(F64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // index of the sign/exponent word

/** E8M0 code of 2^clamp(ceil(log2(v)), -127, 127) for v ≥ 0. */
export function ceilScaleCode(v: number): number {
  if (v <= 2 ** -127) return 0; // ceil(log2 v) ≤ -127 (incl. v = 0 → -inf): clamp to -127
  if (v < 2 ** -126) return 1; // (2^-127, 2^-126): ceil = -126
  if (!(v < Infinity)) return 0xff; // inf / NaN: f32ToE8M0's NaN code, as before
  // v is a normal double: ceil(log2 v) + 127 is the exponent + 127, plus one unless v is a power of two
  // (f32ToE8M0 'up' read from the double's bits); saturates at 254 (2^127)
  F64[0] = v;
  const hi = F64W[HI]!;
  const code = ((hi >>> 20) & 0x7ff) - 1023 + 127 + ((hi & 0xfffff) !== 0 || F64W[1 - HI] !== 0 ? 1 : 0);
  return code <= 0xfe ? code : 0xfe;
}

export function quantize(w: Float32Array, shape: Shape2, opts: MxOptions): MxQuantized {
  const el = opts.element;
  checkMatrix(`${el}.quantize`, w, shape, BLOCK);
  const [rows, cols] = shape;
  const nb = w.length / BLOCK;
  const scales = new Uint8Array(nb);
  const fp8 = el === 'mxfp8';
  const codes = new Uint8Array(fp8 ? w.length : w.length / 2);
  for (let b = 0; b < nb; b++) {
    const code = ceilScaleCode(Math.fround(absMax(w, b * BLOCK, (b + 1) * BLOCK) / ELEM_MAX[el]));
    scales[b] = code;
    const scale = E8M0_F64[code]!;
    // x = fp32(w / scale), then e4m3 (RNE, saturating) or e2m1 (RNE, packed low nibble first)
    if (fp8) e4m3Quotients(w, b * BLOCK, (b + 1) * BLOCK, scale, codes, false);
    else e2m1PackedQuotients(w, b * BLOCK, (b + 1) * BLOCK, scale, codes);
  }
  return { codes, scales, meta: { format: el, blockSize: BLOCK, shape: [rows, cols] } };
}

export function dequantize(q: MxQuantized): Float32Array {
  const n = q.meta.shape[0] * q.meta.shape[1];
  const fp8 = q.meta.format === 'mxfp8';
  if (!fp8) checkPackedLength(q.codes, n);
  const out = new Float32Array(n);
  // power-of-two product, one fp32 rounding
  for (let b = 0; b * BLOCK < n; b++) {
    const scale = E8M0_F64[q.scales[b]!]!;
    const end = Math.min((b + 1) * BLOCK, n);
    if (fp8) scaledDecode(E4M3_F32, q.codes, b * BLOCK, end, scale, out, false);
    else packedScaledDecode(E2M1_F32, q.codes, b * BLOCK, end, scale, out);
  }
  return out;
}

export function fakeQuantize(w: Float32Array, shape: Shape2, opts: MxOptions): Float32Array {
  return dequantize(quantize(w, shape, opts));
}
