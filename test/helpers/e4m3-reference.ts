// An independent float8_e4m3fn reference for quantization tests: brute-force nearest of the 127
// magnitudes with ties to the even code, after clamping to ±448 (formats.md), instead of the codec's
// bit arithmetic.

import { e4m3ToF32 } from '../../src/tensor/codecs.js';

export const isNegative = (x: number): boolean => x < 0 || Object.is(x, -0);

const E4M3_MAGS = Array.from({ length: 127 }, (_, c) => e4m3ToF32(c));

/** e4m3fn code of clamp(x, ±448). */
export function e4m3Code(x: number): number {
  const a = Math.min(Math.abs(x), 448);
  let best = 0;
  for (let c = 1; c < 127; c++) {
    const d = Math.abs(E4M3_MAGS[c]! - a);
    const db = Math.abs(E4M3_MAGS[best]! - a);
    if (d < db || (d === db && c % 2 === 0)) best = c;
  }
  return (isNegative(x) ? 0x80 : 0) | best;
}

/** The value of e4m3Code(x). */
export const e4m3Value = (x: number): number => e4m3ToF32(e4m3Code(x));
