// Independent re-derivations of exported weight bytes from formats.md, for the exporter tests: written out
// again here (brute-force e2m1 / e4m3 nearest values, explicit round half to even) rather than calling the
// format code they check.

import { e4m3ToF32 } from '../../src/tensor/codecs.js';
import { e4m3Code } from './e4m3-reference.js';

const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

/** The e2m1 code of x: the nearest of the eight magnitudes (ties to the even code, beyond 6 saturating), sign in bit 3. */
function e2m1Code(x: number): number {
  const a = Math.abs(x);
  let best = 0;
  for (let i = 1; i < 8; i++) if (Math.abs(E2M1[i]! - a) < Math.abs(E2M1[best]! - a) || (Math.abs(E2M1[i]! - a) === Math.abs(E2M1[best]! - a) && i % 2 === 0)) best = i;
  return (x < 0 ? 8 : 0) | best;
}

/** formats.md MXFP4: per 32 along a row, scale 2^clamp(ceil(log2(block amax / 6)), -127, 127) stored as E8M0 (exponent + 127), e2m1 codes of w / scale, low nibble first. */
export function mxfp4Reference(w: Float32Array, rows: number, cols: number): { codes: Uint8Array; scales: Uint8Array } {
  const scales = new Uint8Array((rows * cols) / 32);
  const codes = new Uint8Array((rows * cols) / 2);
  for (let b = 0; b < scales.length; b++) {
    let m = 0;
    for (let i = 0; i < 32; i++) m = Math.max(m, Math.abs(w[b * 32 + i]!));
    const e = m === 0 ? -127 : Math.min(127, Math.max(-127, Math.ceil(Math.log2(m / 6))));
    scales[b] = e + 127;
    for (let i = 0; i < 32; i++) {
      const k = b * 32 + i;
      const c = e2m1Code(w[k]! / 2 ** e);
      codes[k >> 1]! |= k % 2 === 0 ? c : c << 4;
    }
  }
  return { codes, scales };
}

/** formats.md NVFP4: s2 = amax/2688, block scale e4m3(clamp(bamax/(6 s2), 2^-9, 448)) (0 -> 1), e2m1 RNE codes, low nibble first. */
export function nvfp4Reference(w: Float32Array, rows: number, cols: number, amax: number): { codes: Uint8Array; scales: Uint8Array; s2: number } {
  const f = Math.fround;
  const s2 = f(amax / 2688);
  const scales = new Uint8Array((rows * cols) / 16);
  const codes = new Uint8Array((rows * cols) / 2);
  for (let b = 0; b < scales.length; b++) {
    let m = 0;
    for (let i = 0; i < 16; i++) m = Math.max(m, Math.abs(w[b * 16 + i]!));
    let sb = f(m / f(6 * s2));
    if (sb === 0) sb = 1;
    scales[b] = e4m3Code(Math.min(Math.max(sb, 2 ** -9), 448));
    const div = f(e4m3ToF32(scales[b]!) * s2);
    for (let i = 0; i < 16; i++) {
      const k = b * 16 + i;
      const c = e2m1Code(f(w[k]! / div));
      codes[k >> 1]! |= k % 2 === 0 ? c : c << 4;
    }
  }
  return { codes, scales, s2 };
}

/** formats.md INT4 round to nearest: per group of g along a row, scale = amax/7, q = clamp(round-half-even(w / scale), -8, 7). */
export function int4Reference(w: Float32Array, rows: number, cols: number, g: number): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array((rows * cols) / g);
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < cols / g; b++) {
      let m = 0;
      for (let i = 0; i < g; i++) m = Math.max(m, Math.abs(w[r * cols + b * g + i]!));
      const s = Math.fround(m / 7);
      scales[r * (cols / g) + b] = s;
      for (let i = 0; i < g; i++) {
        const x = Math.fround(w[r * cols + b * g + i]! / s);
        const fl = Math.floor(x);
        const rr = x - fl === 0.5 ? (fl % 2 === 0 ? fl : fl + 1) : Math.round(x);
        q[r * cols + b * g + i] = Math.max(-8, Math.min(7, rr));
      }
    }
  }
  return { q, scales };
}

/** formats.md INT4 export packing: uint8 [rows/2, cols], byte[j, i] = q[2j, i] low nibble | q[2j+1, i] high nibble. */
export function packInt4Rows(q: Int8Array, rows: number, cols: number): Uint8Array {
  const packed = new Uint8Array((rows / 2) * cols);
  for (let j = 0; j < rows / 2; j++) for (let i = 0; i < cols; i++) packed[j * cols + i] = (q[2 * j * cols + i]! & 0xf) | ((q[(2 * j + 1) * cols + i]! & 0xf) << 4);
  return packed;
}

/**
 * W4A8_AWQ (docs/export.md): the INT4 stage as int4Reference, packed like W4A16; weight_scale_2 = amax2/448
 * in fp32, amax2 the max |W| of the unquantized weight (of its fused group).
 */
export function w4a8Reference(w: Float32Array, rows: number, cols: number, g: number, amax2: number): { codes: Uint8Array; scales: Float32Array; s2: number } {
  const { q, scales } = int4Reference(w, rows, cols, g);
  return { codes: packInt4Rows(q, rows, cols), scales, s2: Math.fround(amax2 / 448) };
}
