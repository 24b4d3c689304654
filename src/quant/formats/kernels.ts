// Host inner loops shared by the weight formats. A 1B-parameter export quantizes, dequantizes and re-derives
// ~1e9 weights several times, so these are written for V8: plain loops over typed arrays, no closures or
// per-element allocation, float32 rounding done by a Float32Array store, and the element codecs done on the
// float32 bit pattern where that is cheaper (the formats always round to float32 first, like torch, so the
// bits are the value).
// They are bit-identical to the scalar codecs in src/tensor/codecs.ts (test/quant/host-bit-identity.test.ts
// and test/tensor/codecs-bit-identity.test.ts check them against the pre-speedup code).

import { bf16BitsToF32, f32ToBf16Bits } from '../../tensor/codecs.js';

/** x + MAGIC - MAGIC rounds a double |x| < 2^51 to an integer, ties to even (the double grid there is 1 wide). */
const MAGIC = 6755399441055744; // 1.5 · 2^52

// Scratch word: a quotient stored here is rounded to float32 (same as Math.fround) and its bits read back.
const QF = new Float32Array(1);
const QU = new Uint32Array(QF.buffer);

/** Float32 bit pattern of x rounded to float32. */
export function f32Bits(x: number): number {
  QF[0] = x;
  return QU[0]!;
}

/**
 * float8_e4m3fn code of the float32 with bits `b` (and value `x`, the same number), round-to-nearest-even,
 * saturating: |x| ≥ 448 and ±inf give ±448 (0x7e / 0xfe), NaN gives the NaN code with its sign. This is
 * f32ToE4M3(clamp(x, ±448), true) and f32ToE4M3(x, true) at once: every value the clamp changes rounds to 448.
 */
export function e4m3Sat(b: number, x: number): number {
  const a = b & 0x7fffffff;
  const s = (b >>> 24) & 0x80;
  if (a >= 0x3c800000) {
    // 2^-6 ≤ |x| < 448: normal e4m3. Add half an ulp of the 3-bit mantissa (minus one when the kept LSB is
    // even, so ties go to even), truncate, and rebias the exponent 127 → 7; a carry rolls into the exponent.
    if (a < 0x43e00000) return s | ((a + 0x7ffff + ((a >>> 20) & 1) - 0x3c000000) >>> 20);
    return s | (a > 0x7f800000 ? 0x7f : 0x7e);
  }
  // Subnormal e4m3 (steps of 2^-9): the code is the magnitude in units of 2^-9 rounded half-even; 8 (2^-6)
  // is the first normal code, so a carry lands right. |x|·512 < 8 is exact.
  return s | (Math.abs(x) * 512 + MAGIC - MAGIC);
}

/**
 * float4_e2m1 code of the float32 with bits `b`: codecs.ts f32ToE2M1 for float32 inputs, small enough for
 * V8 to inline into the element loops (f32ToE2M1 itself is not, being several times slower there).
 * Magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}; the code counts the rounding thresholds below |x|, with ties to the
 * even code (0.25 → 0, 0.75 → 2, 1.25 → 2, 1.75 → 4, 2.5 → 4, 3.5 → 6, 5 → 6) and ±inf → ±6.
 * `(T - a) >>> 31` is 1 exactly when a > T (both below 2^31), so the count needs no branches.
 */
export function e2m1(b: number): number {
  const a = b & 0x7fffffff;
  // NaN (only a 0/0 from an underflowed divisor): ml_dtypes' mapping, +NaN → 0x8 and -NaN → 0x0 (codecs.ts).
  if (a > 0x7f800000) return b >>> 31 === 1 ? 0 : 8;
  return ((b >>> 28) & 8)
    + ((0x3e800000 - a) >>> 31) // > 0.25
    + ((0x3f3fffff - a) >>> 31) // ≥ 0.75
    + ((0x3fa00000 - a) >>> 31) // > 1.25
    + ((0x3fdfffff - a) >>> 31) // ≥ 1.75
    + ((0x40200000 - a) >>> 31) // > 2.5
    + ((0x405fffff - a) >>> 31) // ≥ 3.5
    + ((0x40a00000 - a) >>> 31); // > 5
}

/** Rounds the double x once to bfloat16 (Model Optimizer's bf16 arithmetic); rare path, not hot. */
export function roundBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

/**
 * codes[i] = e4m3(clamp(round(w[i] / scale), ±448)) for i in [start, end): the quotient rounded once to
 * float32, or to bfloat16 when `bf16` (FP8 'bfloat16' arithmetic), then cast with RNE.
 */
export function e4m3Quotients(w: Float32Array, start: number, end: number, scale: number, codes: Uint8Array, bf16: boolean): void {
  const qf = QF;
  const qu = QU;
  if (bf16) {
    for (let i = start; i < end; i++) {
      qf[0] = roundBf16(w[i]! / scale); // a bfloat16 value: exact in float32
      codes[i] = e4m3Sat(qu[0]!, qf[0]!);
    }
    return;
  }
  for (let i = start; i < end; i++) {
    qf[0] = w[i]! / scale;
    codes[i] = e4m3Sat(qu[0]!, qf[0]!);
  }
}

/**
 * out[i] = table[codes[i]] · scale for i in [start, end), rounded once to float32 by the store (or to bfloat16
 * first when `bf16`). `table` is a decode table (float32 values) of the code format.
 */
export function scaledDecode(table: Float32Array, codes: Uint8Array, start: number, end: number, scale: number, out: Float32Array, bf16: boolean): void {
  if (bf16) {
    for (let i = start; i < end; i++) out[i] = roundBf16(table[codes[i]!]! * scale);
    return;
  }
  for (let i = start; i < end; i++) out[i] = table[codes[i]!]! * scale;
}

/** clamp(round_half_even(x), lo, hi) for integer bounds; NaN stays NaN (an integer typed array stores it as 0). */
export function roundClamp(x: number, lo: number, hi: number): number {
  // Clamping first is the same as clamping the rounded value (lo, hi are integers), and keeps |x| < 2^51.
  const c = x < lo ? lo : x > hi ? hi : x;
  return c + MAGIC - MAGIC;
}

/**
 * E2M1 codes of float32(w[i] / div) for the pairs in [start, end) (start even, end - start even), packed two
 * per byte into packed[i / 2]: element 2k in the low nibble (packNibbles' layout).
 */
export function e2m1PackedQuotients(w: Float32Array, start: number, end: number, div: number, packed: Uint8Array): void {
  const qf = QF;
  const qu = QU;
  for (let i = start; i < end; i += 2) {
    qf[0] = w[i]! / div; // the store rounds to float32, as Math.fround did
    const lo = e2m1(qu[0]!);
    qf[0] = w[i + 1]! / div;
    packed[i >>> 1] = lo | (e2m1(qu[0]!) << 4);
  }
}

/** out[i] = table[nibble i of packed] · scale for i in [start, end) (start, end even), rounded once to float32. */
export function packedScaledDecode(table: Float32Array, packed: Uint8Array, start: number, end: number, scale: number, out: Float32Array): void {
  for (let i = start; i < end; i += 2) {
    const byte = packed[i >>> 1]!;
    out[i] = table[byte & 0xf]! * scale;
    out[i + 1] = table[byte >>> 4]! * scale;
  }
}
