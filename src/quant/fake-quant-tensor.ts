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

import { add, amax as absMax, binary, cast, compare, maximum, minimum, mul, reshape, sub, div, unary, where, type Tensor } from '../tensor/index.js';
import { amaxScale } from './formats/common.js';
import { checkAmax } from './formats/activations.js';

/** 1.5 * 2^23: adding it to a float32 |v| < 2^22 leaves the integer rne(v) in the low bits */
const RNE_MAGIC = 12582912;

/** round half to even of float32 values below 2^22 in magnitude */
const rne = (v: Tensor): Tensor => sub(add(v, RNE_MAGIC), RNE_MAGIC);

/** NVFP4 blocks of 16 along the last dim with global scale amax / 2688; null when the last dim does not tile. */
function nvfp4(f: Tensor, amax: number): Tensor | null {
  const cols = f.shape[f.ndim - 1]!;
  if (cols % 16 !== 0) return null;
  const s2 = amaxScale('activations.nvfp4', amax, 6 * 448);
  const blocks = reshape(f, [...f.shape.slice(0, -1), cols / 16, 16]);
  let sb = div(absMax(blocks, [-1], true), Math.fround(6 * s2));
  sb = where(compare('eq', sb, 0), 1, sb);
  sb = minimum(maximum(sb, 2 ** -9), 448);
  const d = mul(cast(cast(sb, 'float8_e4m3fn'), 'float32'), s2);
  return reshape(mul(e2m1Grid(div(blocks, d)), d), [...f.shape]);
}

/** float32 values rounded to the E2M1 grid (steps of 0.5 below 2, 1 below 4, 2 up to the saturation at 6; ties to even). */
function e2m1Grid(v: Tensor): Tensor {
  const a = unary('abs', v);
  const fine = div(rne(mul(v, 2)), 2); // |v| < 2: steps of 0.5
  const mid = rne(v); // 2 <= |v| < 4: steps of 1
  const coarse = minimum(maximum(mul(rne(div(v, 2)), 2), -6), 6); // steps of 2, saturating at 6
  return where(compare('lt', a, 2), fine, where(compare('lt', a, 4), mid, coarse));
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
  let s = div(absMax(f, [-1], true), 448);
  s = where(compare('eq', s, 0), 1, s);
  return mul(cast(cast(minimum(maximum(div(f, s), -448), 448), 'float8_e4m3fn'), 'float32'), s);
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
    const s = amaxScale('activations.fp8', amax, 448);
    const q = minimum(maximum(div(f, s), -448), 448);
    y = mul(cast(cast(q, 'float8_e4m3fn'), 'float32'), s);
  } else {
    const s = amaxScale('activations.int8', amax, 127);
    const q = minimum(maximum(div(f, s), -128), 127);
    y = mul(sub(add(q, RNE_MAGIC), RNE_MAGIC), s);
  }
  return x.dtype === 'float32' ? y : cast(y, x.dtype);
}
