// Fake quantization of activations as tensor ops on the model's own device, for the static per-tensor
// schemes whose arithmetic is a few float32 element-wise ops: FP8 (x/s clamped to ±448, cast to e4m3 with
// round-to-nearest-even, times s) and INT8 (x/s clamped to [-128, 127], rounded half to even by adding and
// subtracting 1.5·2^23 in float32, times s). Each op rounds once to float32 exactly as formats/activations.ts
// does, so the result is bit-identical to the host code (tested on every backend) without a device round trip.
// Blocked and dynamic schemes (NVFP4, MX, FP8 per token) return null: the host code handles them.

import { add, cast, maximum, minimum, mul, sub, div, type Tensor } from '../tensor/index.js';
import { amaxScale } from './formats/common.js';
import { checkAmax } from './formats/activations.js';

/** 1.5 * 2^23: adding it to a float32 |v| < 2^22 leaves the integer rne(v) in the low bits */
const RNE_MAGIC = 12582912;

export function fakeQuantOnDevice(kind: string, x: Tensor, amax: number | null): Tensor | null {
  if ((kind !== 'fp8' && kind !== 'int8') || amax === null) return null;
  checkAmax(`activations.${kind}`, amax);
  const f = x.dtype === 'float32' ? x : cast(x, 'float32');
  let y: Tensor;
  if (kind === 'fp8') {
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
