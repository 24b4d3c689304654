// Fake quantization of activations as tensor ops on the model's own device, for the schemes whose arithmetic
// is a few float32 element-wise ops and reductions:
// - FP8 static: x/s clamped to ±448, cast to e4m3 (round to nearest even), times s;
// - INT8 static: x/s clamped to [-128, 127], rounded half to even by adding and subtracting 1.5·2^23 in
//   float32, times s;
// - NVFP4 (dynamic blocks of 16, calibrated global scale s2): block amax / (6 s2), 0 -> 1, clamped to
//   [2^-9, 448] and cast to e4m3 gives the block divisor d = e4m3 · s2; x/d is rounded to the E2M1 grid
//   (steps of 0.5 below 2, 1 below 4, 2 up to the saturation at 6, ties to even) and multiplied back by d.
// - FP8 per token (dynamic): each row's amax / 448 (0 -> 1) as the row's scale, then as FP8 static.
// Each op rounds once to float32 exactly as formats/activations.ts does, so the result equals the host code
// bit for bit (up to the sign of a zero; tested on every backend) without a device round trip. MX returns
// null: the host code handles it.

import { add, amax as absMax, cast, compare, maximum, minimum, mul, reshape, sub, div, unary, where, type Tensor } from '../tensor/index.js';
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
  const v = div(blocks, d);
  const a = unary('abs', v);
  const fine = div(rne(mul(v, 2)), 2); // |v| < 2: steps of 0.5
  const mid = rne(v); // 2 <= |v| < 4: steps of 1
  const coarse = minimum(maximum(mul(rne(div(v, 2)), 2), -6), 6); // steps of 2, saturating at 6
  const q = where(compare('lt', a, 2), fine, where(compare('lt', a, 4), mid, coarse));
  return reshape(mul(q, d), [...f.shape]);
}

/** FP8 with a scale per row (token): row amax / 448, 0 -> 1, as formats/fp8.ts per channel. */
function fp8PerToken(f: Tensor): Tensor {
  let s = div(absMax(f, [-1], true), 448);
  s = where(compare('eq', s, 0), 1, s);
  return mul(cast(cast(minimum(maximum(div(f, s), -448), 448), 'float8_e4m3fn'), 'float32'), s);
}

export function fakeQuantOnDevice(kind: string, x: Tensor, amax: number | null): Tensor | null {
  if (kind === 'fp8-per-token') {
    const y = fp8PerToken(x.dtype === 'float32' ? x : cast(x, 'float32'));
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
