// Fake quantization of activations as tensor ops on the model's own device, for the schemes whose arithmetic
// is a few float32 element-wise ops and reductions:
// - FP8 static: x/s clamped to ±448, cast to e4m3 (round to nearest even), times s;
// - INT8 static: x/s clamped to [-128, 127], rounded half to even by adding and subtracting 1.5·2^23 in
//   float32, times s;
// - NVFP4 (dynamic blocks of 16, calibrated global scale s2): block amax / (6 s2), 0 -> 1, clamped to
//   [2^-9, 448] and cast to e4m3 gives the block divisor d = e4m3 · s2; x/d is rounded to the E2M1 grid
//   (steps of 0.5 below 2, 1 below 4, 2 up to the saturation at 6, ties to even) and multiplied back by d.
// - FP8 per token (dynamic): each row's amax / 448 (0 -> 1) as the row's scale, then as FP8 static.
// - MXFP8 / MXFP4 (dynamic blocks of 32): the block scale is the smallest power of two >= block amax /
//   elem_max (448 or 6), clamped to [2^-127, 2^127] (formats/mx.ts); it is found from a natural-log guess
//   corrected by exact comparisons with powers of two, then x / scale is cast to e4m3 or rounded to the E2M1
//   grid and multiplied back.
// Each op rounds once to float32 exactly as formats/activations.ts does, so the result equals the host code
// bit for bit (up to the sign of a zero; tested on every backend) without a device round trip.
// Weights (fakeQuantWeightOnDevice: AWQ lite's candidates, one per α and Linear) reuse the same pieces for
// INT4 groups (group amax / 7, 0 -> 1, x / scale rounded half to even, clamped to [-8, 7], times the scale),
// W4A8 (those, then FP8 with the per-tensor scale) and NVFP4, with zeros signed as the host codes sign them.

import { add, amax as absMax, binary, cast, compare, maximum, minimum, mul, reshape, sub, div, tidy, unary, where, type Tensor } from '../tensor/index.js';
import { amaxScale } from './formats/common.js';
import { checkAmax } from './formats/activations.js';
import { sharesTensorAmax, type WeightScheme } from './scheme.js';

/** 1.5 * 2^23: adding it to a float32 |v| < 2^22 leaves the integer rne(v) in the low bits */
const RNE_MAGIC = 12582912;

/** round half to even of float32 values below 2^22 in magnitude */
const rne = (v: Tensor): Tensor => tidy(() => sub(add(v, RNE_MAGIC), RNE_MAGIC));

/**
 * NVFP4 blocks of 16 along the last dim with global scale amax / 2688; null when the last dim does not tile.
 * `fn` names the caller in amaxScale's underflow error; `signedZeros` as in e2m1Grid.
 */
function nvfp4(f: Tensor, amax: number, fn = 'activations.nvfp4', signedZeros = false): Tensor | null {
  const cols = f.shape[f.ndim - 1]!;
  if (cols % 16 !== 0) return null;
  const s2 = amaxScale(fn, amax, 6 * 448);
  const blocks = reshape(f, [...f.shape.slice(0, -1), cols / 16, 16]);
  let sb = div(absMax(blocks, [-1], true), Math.fround(6 * s2));
  sb = where(compare('eq', sb, 0), 1, sb);
  sb = minimum(maximum(sb, 2 ** -9), 448);
  const d = mul(cast(cast(sb, 'float8_e4m3fn'), 'float32'), s2);
  return reshape(mul(tidy(() => e2m1Grid(div(blocks, d), signedZeros)), d), [...f.shape]);
}

/**
 * float32 values rounded to the E2M1 grid (steps of 0.5 below 2, 1 below 4, 2 up to the saturation at 6; ties
 * to even). rne() makes every zero +0; `signedZeros` gives a zero the sign of v as the E2M1 code's sign bit does
 * (two more ops: weights are compared bit for bit, activations only by value).
 */
function e2m1Grid(v: Tensor, signedZeros = false): Tensor {
  // nested tidy scopes free each branch's temporaries as soon as it is done (a few copies of v at a time)
  return tidy(() => {
    const a = unary('abs', v);
    const above2 = tidy(() => {
      const mid = rne(v); // 2 <= |v| < 4: steps of 1
      const coarse = tidy(() => minimum(maximum(mul(rne(div(v, 2)), 2), -6), 6)); // steps of 2, saturating at 6
      return tidy(() => where(compare('lt', a, 4), mid, coarse));
    });
    const fine = tidy(() => div(rne(mul(v, 2)), 2)); // |v| < 2: steps of 0.5
    const r = tidy(() => where(compare('lt', a, 2), fine, above2));
    return signedZeros ? where(compare('eq', r, 0), mul(v, 0), r) : r;
  });
}

const MX_ELEM_MAX = { mxfp8: 448, mxfp4: 6 } as const;

/** MXFP8 / MXFP4 blocks of 32 along the last dim; null when the last dim does not tile. */
function mx(f: Tensor, element: keyof typeof MX_ELEM_MAX): Tensor | null {
  const cols = f.shape[f.ndim - 1]!;
  if (cols % 32 !== 0) return null;
  const blocks = reshape(f, [...f.shape.slice(0, -1), cols / 32, 32]);
  const v = div(absMax(blocks, [-1], true), MX_ELEM_MAX[element]);
  // the smallest power of two >= v: log2 rounded to an integer is within one of it; exact comparisons fix it
  const guess = minimum(maximum(rne(div(unary('log', maximum(v, 2 ** -149)), Math.LN2)), -127), 127);
  // pow's float32 result may be an ulp or two off a power of two on some devices: rounding it to bfloat16
  // (8 exponent bits, like float32) lands exactly on the power
  let p = cast(cast(binary('pow', 2, guess), 'bfloat16'), 'float32');
  p = where(compare('lt', p, v), mul(p, 2), p);
  p = where(compare('ge', div(p, 2), v), div(p, 2), p);
  p = minimum(maximum(p, 2 ** -127), 2 ** 127);
  const x = div(blocks, p);
  const q = element === 'mxfp8' ? cast(cast(x, 'float8_e4m3fn'), 'float32') : e2m1Grid(x);
  return reshape(mul(q, p), [...f.shape]);
}

/** FP8 with a scale per row (token): row amax / 448, 0 -> 1, as formats/fp8.ts per channel. */
function fp8PerToken(f: Tensor): Tensor {
  const s = div(absMax(f, [-1], true), 448);
  return fp8WithScale(f, where(compare('eq', s, 0), 1, s));
}

/** FP8 with scale s (per tensor, or a tensor broadcast against f): x/s clamped to ±448, cast to e4m3 (RNE), times s. */
function fp8WithScale(f: Tensor, s: number | Tensor): Tensor {
  return mul(tidy(() => cast(cast(minimum(maximum(div(f, s), -448), 448), 'float8_e4m3fn'), 'float32')), s);
}

export function fakeQuantOnDevice(kind: string, x: Tensor, amax: number | null): Tensor | null {
  if (kind === 'fp8-per-token' || kind === 'mxfp8' || kind === 'mxfp4') {
    const f = x.dtype === 'float32' ? x : cast(x, 'float32');
    const y = kind === 'fp8-per-token' ? fp8PerToken(f) : mx(f, kind);
    if (y === null) return null;
    return x.dtype === 'float32' ? y : cast(y, x.dtype);
  }
  if ((kind !== 'fp8' && kind !== 'int8' && kind !== 'nvfp4') || amax === null) return null;
  checkAmax(`activations.${kind}`, amax);
  const f = x.dtype === 'float32' ? x : cast(x, 'float32');
  let y: Tensor;
  if (kind === 'nvfp4') {
    const r = nvfp4(f, amax);
    if (r === null) return null;
    y = r;
  } else if (kind === 'fp8') {
    y = fp8WithScale(f, amaxScale('activations.fp8', amax, 448));
  } else {
    const s = amaxScale('activations.int8', amax, 127);
    const q = minimum(maximum(div(f, s), -128), 127);
    y = mul(sub(add(q, RNE_MAGIC), RNE_MAGIC), s);
  }
  return x.dtype === 'float32' ? y : cast(y, x.dtype);
}

/** INT4 groups along the last dim: group amax / 7 (0 -> 1), x / scale rounded half to even, clamped to [-8, 7]. */
function int4Groups(f: Tensor, group: number): Tensor {
  const [rows, cols] = f.shape as [number, number];
  const g = reshape(f, [rows, cols / group, group]);
  const a = absMax(g, [-1], true);
  const s = where(compare('eq', a, 0), 1, div(a, 7));
  // |x / s| <= 7 (up to an ulp): rne's range; zeros come out +0 like the host's integer codes times the scale
  return reshape(mul(tidy(() => minimum(maximum(rne(div(g, s)), -8), 7)), s), [rows, cols]);
}

/** What the device path needs to know of a weight x besides its shape (AWQ lite derives it from column stats). */
export interface WeightStats {
  /** max |x|, exactly the host's absMax; NaN when some element is not finite */
  amax: number;
  /** a lower bound of the nonzero |x| (Infinity when all are zero) */
  minNonzero: number;
}

/** Per-column max and smallest nonzero |w| of a host weight [out, in], and whether every element is finite. */
export interface ColumnStats {
  max: Float32Array;
  /** Infinity for an all-zero column */
  minNonzero: Float32Array;
  finite: boolean;
}

export function columnStats(w: Float32Array, shape: readonly [number, number]): ColumnStats {
  const [rows, cols] = shape;
  const max = new Float32Array(cols);
  const minNonzero = new Float32Array(cols).fill(Infinity);
  let finite = true;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const a = Math.abs(w[r * cols + j]!);
      if (!(a < Infinity)) finite = false; // NaN or inf
      if (a > max[j]!) max[j] = a;
      if (a !== 0 && a < minNonzero[j]!) minNonzero[j] = a;
    }
  }
  return { max, minNonzero, finite };
}

/**
 * The WeightStats of x = fround(w / c) (columns divided by positive float32 factors), from w's column stats:
 * |x| = fround(|w| / c_j) rises with |w|, so max |x| is the max over columns of fround(max_j / c_j) exactly,
 * and fround(minNonzero_j / c_j) bounds the nonzero |x| from below (a quotient may underflow to 0).
 */
export function dividedStats(cs: ColumnStats, c: Float32Array): WeightStats {
  let amax = 0;
  let minNonzero = Infinity;
  for (let j = 0; j < c.length; j++) {
    amax = Math.max(amax, Math.fround(cs.max[j]! / c[j]!));
    if (cs.minNonzero[j]! < Infinity) minNonzero = Math.min(minNonzero, Math.fround(cs.minNonzero[j]! / c[j]!));
  }
  return { amax: cs.finite ? amax : NaN, minNonzero };
}

/**
 * Whether fakeQuantWeightOnDevice reproduces the host's fakeQuantWeight for a float32 weight [out, in] with
 * these stats (`shared`: a fused group's per-tensor amax, as fakeQuantWeight takes it). Not for schemes AWQ
 * does not search, shapes that do not tile (the host throws), non-finite weights (the host throws), INT4 groups
 * whose amax / 7 may underflow to 0 (below 2^-147: the host throws) or NVFP4 global scales so small that a
 * block divisor could underflow (the device would divide by 0 where the host rounds inf / NaN to codes).
 */
export function weightFitsDevice(s: WeightScheme, shape: readonly [number, number], stats: WeightStats, shared?: number): boolean {
  const [rows, cols] = shape;
  const amax = sharesTensorAmax(s) ? (shared ?? stats.amax) : stats.amax;
  if (!Number.isFinite(stats.amax) || !Number.isFinite(amax)) return false;
  switch (s.kind) {
    case 'int4':
    case 'w4a8':
      return cols % s.groupSize === 0 && rows % 2 === 0 && stats.minNonzero >= 2 ** -147;
    case 'nvfp4':
      return cols % 16 === 0 && (amax === 0 || amax >= 2 ** -96);
    default:
      return false;
  }
}

/**
 * Quantize -> dequantize of a float32 weight [out, in] on its device, bit for bit fakeQuantWeight(s, x, shape,
 * shared) where weightFitsDevice holds (float32 result). `amax` is max |x| (stats.amax), the per-tensor
 * amax of W4A8's FP8 stage and NVFP4's global scale unless a fused group's `shared` one is given.
 */
export function fakeQuantWeightOnDevice(s: WeightScheme, x: Tensor, amax: number, shared?: number): Tensor {
  const tensorAmax = shared ?? amax;
  switch (s.kind) {
    case 'int4':
      return int4Groups(x, s.groupSize);
    case 'w4a8':
      return fp8WithScale(int4Groups(x, s.groupSize), amaxScale('w4a8.quantize', tensorAmax, 448));
    case 'nvfp4':
      return nvfp4(x, tensorAmax, 'nvfp4.quantize', true)!;
    default:
      throw new Error(`fakeQuantWeightOnDevice: ${s.kind} weights are fake-quantized on the host`);
  }
}
