// mopt's own Q4_0 / Q4_K block quantizers: the same block layouts as ggml (gguf-quants.ts), but each block's
// scales are chosen to minimize the output error the calibration predicts instead of ggml's plain rounding.
// For a Linear y = W x the error of row i is Σ_j (W_ij - Q_ij) x_j; averaged over calibration tokens and
// keeping the diagonal, Σ_j E[x_j²] (W_ij - Q_ij)². So every element is weighted by the energy E[x_j²] of its
// input channel (llama.cpp's imatrix idea, here from mopt's calibration windows). llama.cpp multiplies its
// imatrix by sqrt(σ² + W_ij²); on stories260K that helped Q4_0 without AWQ by 0.01 ppl but cost 0.035 with AWQ's
// folded weights and made Q4_K worse than plain rounding, so mopt weighs by E[x_j²] alone (docs/export.md).
//   Q4_0  per block of 32, candidate scales around max/-8 and max/7 (both signs of the 16 levels), each refit
//         twice by weighted least squares; the f16-rounded scale with the least weighted error wins;
//   Q4_K  per 32-element sub-block the best of ggml's (scale, min) search run with these weights over its
//         reference and its imatrix ranges, ggml's own choice and the algorithm's grid; then the 6-bit scales
//         and mins searched jointly over a few super-block scales, ggml's own block included.
// A weight an algorithm already quantized (GPTQ, AWQ clip: values on a symmetric INT4 grid k*s) passes its
// grid step s as a hint, which becomes one more candidate: Q4_0 holds such a grid exactly (d = s) up to the
// f16 rounding of d; Q4_K approximates it. Levels are always the nearest ones under the stored scales.

import { QK, QK_K, getF16, makeQkx2, quantizeRef, packQ4KNibbles, packQ4_0Nibbles, packScalesK4, putF16, requantizeQ4K, scaleMinK4, viaF16 } from './gguf-quants.js';

const f = Math.fround;

/** A symmetric INT4 grid an algorithm quantized the weight to: value = k * step, one step per (row, group of columns). */
export interface GridHint {
  group: number;
  /** [rows * cols / group] */
  step: Float32Array;
}

export interface WeightedTensor {
  /** the values to encode, [rows, cols] row-major (cols = the GGUF row length) */
  x: Float32Array;
  rows: number;
  cols: number;
  /** E[x_j²] of the Linear's input channel j ([cols]); null: every element counts the same */
  importance: Float32Array | null;
  hint: GridHint | null;
}

/** Per-column weights: the importance with a tiny floor (a dead channel must not make a block's weights all zero). */
function columnWeights(t: WeightedTensor): Float32Array {
  if (t.importance === null) return new Float32Array(t.cols).fill(1);
  let mean = 0;
  for (const v of t.importance) mean += v;
  mean /= t.cols;
  const floor = mean > 0 ? mean * 1e-6 : 1;
  return Float32Array.from(t.importance, (v) => f(v + floor));
}

const hintStep = (t: WeightedTensor, row: number, col: number): number | null => (t.hint === null ? null : t.hint.step[(row * t.cols + col) / t.hint.group | 0]!);

// ------------------------------------------------------------------------------------------------------
// Q4_0

/** Weighted error of a Q4_0 block with scale d (as stored in f16) and its nearest levels. */
function q4_0Error(x: Float32Array, w: Float32Array, d: number): number {
  const ds = viaF16(d);
  if (ds === 0 || !Number.isFinite(ds)) {
    let e = 0;
    for (let j = 0; j < QK; j++) e += w[j]! * x[j]! * x[j]!;
    return ds === 0 ? e : Infinity;
  }
  let e = 0;
  for (let j = 0; j < QK; j++) {
    const l = Math.max(-8, Math.min(7, Math.round(x[j]! / ds)));
    const r = x[j]! - f(l * ds);
    e += w[j]! * r * r;
  }
  return e;
}

/** Weighted least-squares scale for the levels d gives: Σ w x l / Σ w l². */
function q4_0Refit(x: Float32Array, w: Float32Array, d: number): number {
  let sxl = 0;
  let sll = 0;
  for (let j = 0; j < QK; j++) {
    const l = Math.max(-8, Math.min(7, Math.round(x[j]! / d)));
    sxl += w[j]! * x[j]! * l;
    sll += w[j]! * l * l;
  }
  return sll > 0 ? sxl / sll : d;
}

function q4_0Block(x: Float32Array, w: Float32Array, step: number | null, out: Uint8Array, at: number): void {
  let max = 0;
  for (let j = 0; j < QK; j++) if (Math.abs(x[j]!) > Math.abs(max)) max = x[j]!;
  let best = 0;
  let bestErr = q4_0Error(x, w, 0);
  const consider = (d: number): void => {
    if (!(Math.abs(d) > 0) || !Number.isFinite(d)) return;
    const e = q4_0Error(x, w, d);
    if (e < bestErr) {
      bestErr = e;
      best = d;
    }
  };
  const starts: number[] = [];
  if (max !== 0) for (let k = -3; k <= 3; k++) starts.push((max / -8) * (1 + 0.04 * k), (max / 7) * (1 + 0.04 * k));
  if (step !== null && step > 0) starts.push(step, -step);
  for (const d0 of starts) {
    consider(d0);
    const d1 = q4_0Refit(x, w, d0);
    consider(d1);
    consider(q4_0Refit(x, w, d1));
  }
  const ds = viaF16(best);
  putF16(out, at, best);
  const L = new Uint8Array(QK);
  for (let j = 0; j < QK; j++) L[j] = ds === 0 ? 8 : Math.max(-8, Math.min(7, Math.round(x[j]! / ds))) + 8;
  packQ4_0Nibbles(L, out, at);
}

export function quantizeQ4_0Weighted(t: WeightedTensor): Uint8Array {
  const cw = columnWeights(t);
  const out = new Uint8Array((t.x.length / QK) * 18);
  for (let r = 0; r < t.rows; r++) {
    for (let c = 0; c < t.cols; c += QK) {
      const b = (r * t.cols + c) / QK;
      q4_0Block(t.x.subarray(r * t.cols + c, r * t.cols + c + QK), cw.subarray(c, c + QK), hintStep(t, r, c), out, b * 18);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------
// Q4_K

/** Weighted error of x ≈ scale*L - min with the nearest levels 0..15. */
function affineError(x: Float32Array, w: Float32Array, scale: number, min: number): number {
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    const l = scale > 0 ? Math.max(0, Math.min(15, Math.round((x[i]! + min) / scale))) : 0;
    const r = x[i]! - (scale * l - min);
    e += w[i]! * r * r;
  }
  return e;
}

/** Weighted error of a whole Q4_K super-block as encoded in block[at..at+144). */
function q4kError(x: Float32Array, w: Float32Array, block: Uint8Array, at: number, L: Uint8Array): number {
  requantizeQ4K(x, block, at, L);
  const d = getF16(block, at);
  const dmin = getF16(block, at + 2);
  let e = 0;
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, block, at + 4);
    const ds = f(d * sc);
    const dm = f(dmin * m);
    for (let i = 32 * j; i < 32 * j + 32; i++) {
      const r = x[i]! - f(f(ds * (ds === 0 ? 0 : L[i]!)) - dm);
      e += w[i]! * r * r;
    }
  }
  return e;
}

/** ggml's own sub-block weights for Q4_K without an imatrix: the sub-block's rms plus |x| */
function ggmlWeights(xs: Float32Array): Float32Array {
  let s2 = 0;
  for (const v of xs) s2 = f(s2 + f(v * v));
  const av = f(Math.sqrt(f(s2 / 32)));
  return Float32Array.from(xs, (v) => f(av + Math.abs(v)));
}

function q4kBlock(x: Float32Array, w: Float32Array, steps: (number | null)[], out: Uint8Array, at: number): void {
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  const L = new Uint8Array(QK_K);
  const scratch = new Uint8Array(32);
  for (let j = 0; j < 8; j++) {
    const xs = x.subarray(32 * j, 32 * j + 32);
    const ws = w.subarray(32 * j, 32 * j + 32);
    // ggml's search with the importance weights (its reference range and its imatrix range), ggml's own
    // choice, and an algorithm's symmetric INT4 grid k*s (k in -8..7 is the affine grid scale s, min 8s)
    const cands: [number, number][] = [
      makeQkx2(xs, ws, 15, scratch, -1, f(0.1), 20),
      makeQkx2(xs, ws, 15, scratch, -0.9, f(0.05), 36),
      makeQkx2(xs, ggmlWeights(xs), 15, scratch, -1, f(0.1), 20),
    ];
    const s = steps[j];
    if (s !== null && s !== undefined && s > 0) cands.push([s, 8 * s]);
    let best = Infinity;
    for (const [sc, mn] of cands) {
      const e = affineError(xs, ws, sc, mn);
      if (e < best) [best, scales[j], mins[j]] = [e, sc, mn];
    }
  }
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    maxScale = Math.max(maxScale, scales[j]!);
    maxMin = Math.max(maxMin, mins[j]!);
  }
  const trial = new Uint8Array(144);
  const ls = new Uint8Array(8);
  const lm = new Uint8Array(8);
  // ggml's reference block is a candidate too, so the weighted error never exceeds its rounding's
  const ref = quantizeRef('Q4_K', x, QK_K);
  let bestErr = q4kError(x, w, ref, 0, L);
  out.set(ref, at);
  for (let ts = 0; ts <= 4; ts++) {
    for (let tm = 0; tm <= 4; tm++) {
      const dS = maxScale > 0 ? maxScale / (63 - 2 * ts) : 0;
      const dM = maxMin > 0 ? maxMin / (63 - 2 * tm) : 0;
      putF16(trial, 0, dS);
      putF16(trial, 2, dM);
      const dSs = viaF16(dS);
      const dMs = viaF16(dM);
      for (let j = 0; j < 8; j++) {
        ls[j] = dSs > 0 ? Math.max(0, Math.min(63, Math.round(scales[j]! / dSs))) : 0;
        lm[j] = dMs > 0 ? Math.max(0, Math.min(63, Math.round(mins[j]! / dMs))) : 0;
      }
      packScalesK4(ls, lm, trial, 4);
      const levels = new Uint8Array(QK_K);
      const e = q4kError(x, w, trial, 0, levels);
      if (e < bestErr) {
        bestErr = e;
        out.set(trial.subarray(0, 16), at);
        packQ4KNibbles(levels, out, at);
      }
    }
  }
}

export function quantizeQ4KWeighted(t: WeightedTensor): Uint8Array {
  const cw = columnWeights(t);
  const out = new Uint8Array((t.x.length / QK_K) * 144);
  const steps: (number | null)[] = new Array<number | null>(8);
  for (let r = 0; r < t.rows; r++) {
    for (let c = 0; c < t.cols; c += QK_K) {
      for (let j = 0; j < 8; j++) steps[j] = hintStep(t, r, c + 32 * j);
      const b = (r * t.cols + c) / QK_K;
      q4kBlock(t.x.subarray(r * t.cols + c, r * t.cols + c + QK_K), cw.subarray(c, c + QK_K), steps, out, b * 144);
    }
  }
  return out;
}
