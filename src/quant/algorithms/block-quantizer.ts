// Element-wise weight quantizers with static block scales, for the algorithms that change a weight after its
// scales are fixed (GPTQ) or that choose each block's amax themselves (the weight MSE search). The scales
// follow the format code exactly (formats/int4.ts, formats/nvfp4.ts): with every block's own amax, quantizing
// each element gives the format's fake-quantized weight.

import { e2m1ToF32, e4m3ToF32, f32ToE2M1, f32ToE4M3 } from '../../tensor/codecs.js';
import { absMax, amaxScale, roundHalfEven } from '../formats/common.js';
import { UserError } from '../../util/errors.js';
import type { WeightScheme } from '../scheme.js';

/** Quantize -> dequantize of one weight element with the static scale of its block. */
export type ElementQuantizer = (v: number, row: number, col: number) => number;

/**
 * The amax values a weight's static scales were made from: one per block, and NVFP4's global amax (null for
 * INT4). Recorded with an algorithm's weight so the export can write codes and scales (weightFromStatic).
 */
export interface StaticScales {
  blockAmax: Float32Array;
  globalAmax: number | null;
}

/** A weight an algorithm quantized: its dequantized values and the amax values of its scales. */
export interface StaticWeight {
  values: Float32Array;
  scales: StaticScales;
}

/** The scales staticQuantizer uses for these arguments (each block's own amax, the tensor's amax by default). */
export function staticScales(s: WeightScheme, w: Float32Array, shape: readonly [number, number], blockAmax?: Float32Array, globalAmax?: number): StaticScales {
  const bs = scaleBlock(s);
  const n = (shape[0] * shape[1]) / bs;
  return {
    blockAmax: blockAmax ? Float32Array.from(blockAmax) : Float32Array.from({ length: n }, (_, b) => absMax(w, b * bs, (b + 1) * bs)),
    globalAmax: s.kind === 'nvfp4' ? globalAmax ?? absMax(w, 0, w.length) : null,
  };
}

/** Elements per scale block of the schemes that have static block scales (row-major, along the input dim). */
export function scaleBlock(s: WeightScheme): number {
  switch (s.kind) {
    case 'int4':
      return s.groupSize;
    case 'nvfp4':
      return 16;
    default:
      throw new UserError(`this algorithm quantizes int4 and nvfp4 weights; this recipe's weights are ${s.kind}`);
  }
}

/**
 * Static-scale element quantizer of w [rows, cols]: block b's scale comes from blockAmax[b] (default: the
 * block's own max |w|); NVFP4's global scale from globalAmax (default: the whole tensor's max |w|).
 */
export function staticQuantizer(s: WeightScheme, w: Float32Array, shape: readonly [number, number], blockAmax?: Float32Array, globalAmax?: number): ElementQuantizer {
  const [rows, cols] = shape;
  const bs = scaleBlock(s);
  const amaxOf = (b: number): number => blockAmax?.[b] ?? absMax(w, b * bs, (b + 1) * bs);
  const n = (rows * cols) / bs;
  if (s.kind === 'int4') {
    const scales = new Float32Array(n);
    for (let b = 0; b < n; b++) scales[b] = amaxScale('int4', amaxOf(b), 7);
    return (v, r, c) => {
      const sc = scales[((r * cols + c) / bs) | 0]!;
      // + 0: a code of -0 is 0 (formats/int4.ts stores integer codes, which have no negative zero)
      return Math.min(Math.max(roundHalfEven(Math.fround(v / sc)), -8), 7) * sc + 0;
    };
  }
  const s2 = amaxScale('nvfp4', globalAmax ?? absMax(w, 0, w.length), 6 * 448);
  const denom = Math.fround(6 * s2);
  const div = new Float32Array(n);
  for (let b = 0; b < n; b++) {
    let sb = Math.fround(amaxOf(b) / denom);
    if (sb === 0) sb = 1;
    sb = Math.min(Math.max(sb, 2 ** -9), 448);
    div[b] = Math.fround(e4m3ToF32(f32ToE4M3(sb, true)) * s2);
  }
  return (v, r, c) => {
    const d = div[((r * cols + c) / bs) | 0]!;
    return e2m1ToF32(f32ToE2M1(Math.fround(v / d))) * d;
  };
}

/**
 * For each block, the multiplier of its max |w| (from `multipliers`) whose quantization has the least
 * `blockErr(block, diff)` (diff = w - QDQ(w) over the block's elements); returns the weight quantized that way
 * and the block amax values chosen.
 */
export function searchBlockAmax(
  s: WeightScheme, w: Float32Array, shape: readonly [number, number], multipliers: readonly number[], blockErr: (block: number, diff: Float64Array) => number, globalAmax?: number,
): StaticWeight {
  const [rows, cols] = shape;
  const bs = scaleBlock(s);
  const nb = (rows * cols) / bs;
  const base = new Float32Array(nb);
  for (let b = 0; b < nb; b++) base[b] = absMax(w, b * bs, (b + 1) * bs);
  const best = new Float64Array(nb).fill(Infinity);
  const out = new Float32Array(w.length);
  const cand = new Float32Array(bs);
  const diff = new Float64Array(bs);
  const chosen = new Float32Array(nb);
  for (const m of multipliers) {
    const amax = Float32Array.from(base, (a) => a * m);
    const quant = staticQuantizer(s, w, shape, amax, globalAmax);
    for (let b = 0; b < nb; b++) {
      for (let k = 0; k < bs; k++) {
        const i = b * bs + k;
        cand[k] = quant(w[i]!, Math.floor(i / cols), i % cols);
        diff[k] = w[i]! - cand[k]!;
      }
      const err = blockErr(b, diff);
      if (err < best[b]!) {
        best[b] = err;
        out.set(cand, b * bs);
        chosen[b] = amax[b]!;
      }
    }
  }
  return { values: out, scales: staticScales(s, w, shape, chosen, globalAmax) };
}
