// The ggml block types mopt writes and reads, bit for bit as ggml lays them out (ggml-common.h) and as its
// reference quantizers round (ggml-quants.c quantize_row_*_ref, the "deterministic creation of model files"):
//   F16   IEEE half, round to nearest even (ggml_compute_fp32_to_fp16)
//   Q8_0  32 elements: f16 d = amax/127, int8 q = roundf(x/d) (half away from zero)
//   Q4_0  32 elements: f16 d = max/-8 (max = the signed element of largest |x|), 16 bytes of nibbles:
//         element j in the low nibble of byte j, element j+16 in its high nibble, value (nibble - 8)*d
//   Q4_K  256 elements = 8 sub-blocks of 32: f16 d, f16 dmin, 12 bytes of 6-bit sub-block scales and mins,
//         128 bytes of nibbles (64-element chunks: sub-block 2k in the low nibbles, 2k+1 in the high ones),
//         value d*sc*q - dmin*m; sub-block (scale, min) pairs from ggml's weighted search make_qkx2_quants
// ggml computes in float32 (no FMA in the reference code), so every step here is rounded with Math.fround.

import { f16BitsToF32, f32ToF16Bits, bf16BitsToF32 } from '../tensor/codecs.js';
import { GGML_TYPES, type GgmlTypeName } from '../io/gguf.js';
import { UserError } from '../util/errors.js';

const f = Math.fround;
export const QK = 32;
export const QK_K = 256;

const scratchF = new Float32Array(1);
const scratchI = new Int32Array(scratchF.buffer);

/** ggml's nearest_int: x + 1.5*2^23 in float32, the integer read from the mantissa (round half to even). */
export function nearestInt(x: number): number {
  scratchF[0] = f(x) + 12582912;
  return (scratchI[0]! & 0x007fffff) - 0x00400000;
}

/** C roundf: half away from zero. */
const roundf = (x: number): number => (x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5));

export function putF16(out: Uint8Array, at: number, x: number): void {
  const h = f32ToF16Bits(x);
  out[at] = h & 0xff;
  out[at + 1] = h >>> 8;
}
export const getF16 = (b: Uint8Array, at: number): number => f16BitsToF32(b[at]! | (b[at + 1]! << 8));
/** the float32 value a block scale becomes once stored as f16 */
export const viaF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/** Q4_K's 12 scale bytes from eight 6-bit scales and eight 6-bit mins (ggml's packing). */
export function packScalesK4(ls: ArrayLike<number>, lm: ArrayLike<number>, out: Uint8Array, at: number): void {
  for (let j = 0; j < 12; j++) out[at + j] = 0;
  for (let j = 0; j < 8; j++) {
    const s = ls[j]!;
    const m = lm[j]!;
    if (j < 4) {
      out[at + j] = s;
      out[at + j + 4] = m;
    } else {
      out[at + j + 4] = (s & 0xf) | ((m & 0xf) << 4);
      out[at + j - 4]! |= (s >> 4) << 6;
      out[at + j]! |= (m >> 4) << 6;
    }
  }
}

/** Sub-block j's 6-bit (scale, min) from Q4_K's 12 scale bytes (ggml get_scale_min_k4). */
export function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j]! & 63, q[at + j + 4]! & 63];
  return [(q[at + j + 4]! & 0xf) | ((q[at + j - 4]! >> 6) << 4), (q[at + j + 4]! >> 4) | ((q[at + j]! >> 6) << 4)];
}

/** Writes Q4_K's nibbles for the 256 levels L (0..15) of one super-block. */
export function packQ4KNibbles(L: ArrayLike<number>, out: Uint8Array, at: number): void {
  for (let j = 0; j < QK_K; j += 64) for (let l = 0; l < 32; l++) out[at + 16 + j / 2 + l] = L[j + l]! | (L[j + l + 32]! << 4);
}

/** Writes Q4_0's nibbles for the 32 levels L (0..15) of one block. */
export function packQ4_0Nibbles(L: ArrayLike<number>, out: Uint8Array, at: number): void {
  for (let j = 0; j < 16; j++) out[at + 2 + j] = L[j]! | (L[j + 16]! << 4);
}

// ------------------------------------------------------------------------------------------------------
// reference quantizers

function quantizeQ8_0(x: Float32Array, out: Uint8Array): void {
  for (let b = 0; b < x.length / QK; b++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b * QK + j]!));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    const at = b * 34;
    putF16(out, at, d);
    for (let j = 0; j < QK; j++) out[at + 2 + j] = roundf(f(x[b * QK + j]! * id)) & 0xff;
  }
}

function quantizeQ4_0(x: Float32Array, out: Uint8Array): void {
  const L = new Uint8Array(QK);
  for (let b = 0; b < x.length / QK; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[b * QK + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d !== 0 ? f(1 / d) : 0;
    putF16(out, b * 18, d);
    // (int8_t)(x/d + 8.5f): the float sum truncated toward zero, so halves round up
    for (let j = 0; j < QK; j++) L[j] = Math.min(15, Math.trunc(f(f(x[b * QK + j]! * id) + 8.5)));
    packQ4_0Nibbles(L, out, b * 18);
  }
}

/**
 * ggml's make_qkx2_quants: the (scale, min) of x ≈ scale*L - min, L in 0..nmax, with min <= 0 kept at 0,
 * minimizing Σ w (scale*L + min - x)² over nstep+1 trial scales and a least-squares refit of each.
 * Writes L; returns [scale, -min].
 */
export function makeQkx2(x: Float32Array, w: Float32Array, nmax: number, L: Uint8Array, rmin: number, rdelta: number, nstep: number): [number, number] {
  const n = x.length;
  let min = x[0]!;
  let max = x[0]!;
  let sumW = w[0]!;
  let sumX = f(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    if (x[i]! < min) min = x[i]!;
    if (x[i]! > max) max = x[i]!;
    sumW = f(sumW + w[i]!);
    sumX = f(sumX + f(w[i]! * x[i]!));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0);
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let best = 0;
  for (let i = 0; i < n; i++) {
    L[i] = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[i]! - min)))));
    const diff = f(f(f(scale * L[i]!) + min) - x[i]!);
    best = f(best + f(w[i]! * f(diff * diff)));
  }
  const aux = new Uint8Array(n);
  for (let is = 0; is <= nstep; is++) {
    // min moves to each better candidate's, and the next trial scales follow it (as in ggml)
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[i]! - min)))));
      aux[i] = l;
      const wl = f(w[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
    let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = f(sumXL / sumL2);
    }
    let cur = 0;
    for (let i = 0; i < n; i++) {
      const diff = f(f(f(thisScale * aux[i]!) + thisMin) - x[i]!);
      cur = f(cur + f(w[i]! * f(diff * diff)));
    }
    if (cur < best) {
      L.set(aux);
      best = cur;
      scale = thisScale;
      min = thisMin;
    }
  }
  return [scale, -min];
}

function quantizeQ4_K(x: Float32Array, out: Uint8Array): void {
  const L = new Uint8Array(QK_K);
  const weights = new Float32Array(32);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  const ls = new Uint8Array(8);
  const lm = new Uint8Array(8);
  for (let b = 0; b < x.length / QK_K; b++) {
    const at = b * 144;
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const sub = x.subarray(b * QK_K + 32 * j, b * QK_K + 32 * j + 32);
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(sub[l]! * sub[l]!));
      const avX = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(sub[l]!));
      [scales[j], mins[j]] = makeQkx2(sub, weights, 15, L.subarray(32 * j, 32 * j + 32), -1, f(0.1), 20);
      if (scales[j]! > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    for (let j = 0; j < 8; j++) {
      // (uint8_t) of the int, then MIN(63, ...)
      ls[j] = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
      lm[j] = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
    }
    putF16(out, at, f(maxScale / 63));
    putF16(out, at + 2, f(maxMin / 63));
    packScalesK4(ls, lm, out, at + 4);
    requantizeQ4K(x.subarray(b * QK_K, (b + 1) * QK_K), out, at, L);
    packQ4KNibbles(L, out, at);
  }
}

/** The levels of one Q4_K super-block under its stored (f16) d, dmin and 6-bit scales; a sub-block whose scale is 0 keeps L. */
export function requantizeQ4K(x: Float32Array, block: Uint8Array, at: number, L: Uint8Array): void {
  const d = getF16(block, at);
  const dmin = getF16(block, at + 2);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, block, at + 4);
    const ds = f(d * sc);
    if (ds === 0) continue;
    const dm = f(dmin * m);
    for (let i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(15, nearestInt(f(f(x[32 * j + i]! + dm) / ds))));
  }
}

/** Rows of `rowLength` float32 values encoded as a ggml type by ggml's reference (round-to-nearest) quantizer. */
export function quantizeRef(type: GgmlTypeName, x: Float32Array, rowLength: number): Uint8Array {
  const t = GGML_TYPES[type];
  if (rowLength % t.blockSize !== 0 || x.length % rowLength !== 0) throw new UserError(`${type} needs rows that are a multiple of ${t.blockSize} elements, got ${rowLength}`);
  const out = new Uint8Array((x.length / t.blockSize) * t.typeSize);
  switch (type) {
    case 'F32':
      new Float32Array(out.buffer).set(x);
      break;
    case 'F16':
      for (let i = 0; i < x.length; i++) putF16(out, 2 * i, x[i]!);
      break;
    case 'BF16':
      throw new Error('mopt writes F16, not BF16');
    case 'Q8_0':
      quantizeQ8_0(x, out);
      break;
    case 'Q4_0':
      quantizeQ4_0(x, out);
      break;
    case 'Q4_K':
      quantizeQ4_K(x, out);
      break;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------
// dequantization (ggml dequantize_row_*)

/** `n` float32 values from a ggml tensor's bytes. */
export function dequantize(type: GgmlTypeName, b: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  const t = GGML_TYPES[type];
  if (b.length !== (n / t.blockSize) * t.typeSize) throw new Error(`dequantize ${type}: ${b.length} bytes for ${n} elements`);
  switch (type) {
    case 'F32':
      y.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 4 * n)));
      break;
    case 'F16':
      for (let i = 0; i < n; i++) y[i] = getF16(b, 2 * i);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) y[i] = bf16BitsToF32(b[2 * i]! | (b[2 * i + 1]! << 8));
      break;
    case 'Q8_0':
      for (let k = 0; k < n / QK; k++) {
        const d = getF16(b, k * 34);
        for (let j = 0; j < QK; j++) y[k * QK + j] = f(((b[k * 34 + 2 + j]! << 24) >> 24) * d);
      }
      break;
    case 'Q4_0':
      for (let k = 0; k < n / QK; k++) {
        const d = getF16(b, k * 18);
        for (let j = 0; j < 16; j++) {
          const q = b[k * 18 + 2 + j]!;
          y[k * QK + j] = f(((q & 0xf) - 8) * d);
          y[k * QK + j + 16] = f(((q >> 4) - 8) * d);
        }
      }
      break;
    case 'Q4_K':
      for (let k = 0; k < n / QK_K; k++) {
        const at = k * 144;
        const d = getF16(b, at);
        const dmin = getF16(b, at + 2);
        for (let c = 0; c < 4; c++) {
          const [s1, m1] = scaleMinK4(2 * c, b, at + 4);
          const [s2, m2] = scaleMinK4(2 * c + 1, b, at + 4);
          const d1 = f(d * s1), mm1 = f(dmin * m1), d2 = f(d * s2), mm2 = f(dmin * m2);
          for (let l = 0; l < 32; l++) {
            const q = b[at + 16 + 32 * c + l]!;
            y[k * QK_K + 64 * c + l] = f(f(d1 * (q & 0xf)) - mm1);
            y[k * QK_K + 64 * c + 32 + l] = f(f(d2 * (q >> 4)) - mm2);
          }
        }
      }
      break;
  }
  return y;
}
