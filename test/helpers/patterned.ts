// Deterministic, dtype-appropriate tensor contents (negative values, high bits set) so that byte-order,
// offset or type mix-ups in I/O tests show up.

import { allocStorage, type DType, type StorageArray } from '../../src/tensor/dtype.js';
import { numel, type RawTensor } from '../../src/io/raw-tensor.js';

export function patterned(dtype: DType, shape: number[], seed = 1): RawTensor {
  const n = numel(shape);
  const data: StorageArray = allocStorage(dtype, n);
  for (let i = 0; i < n; i++) {
    const k = i * 7919 + seed * 104729;
    if (data instanceof Float64Array || data instanceof Float32Array) data[i] = (i - n / 2) * 0.37 + (seed - 1);
    else if (data instanceof BigInt64Array) data[i] = BigInt(k) * -1234567890123n;
    else if (dtype === 'bool') data[i] = k % 2;
    else if (data instanceof Int8Array) data[i] = (k % 256) - 128;
    else if (data instanceof Int16Array) data[i] = (k % 65536) - 32768;
    else if (data instanceof Int32Array) data[i] = k * 40503 - 2 ** 30;
    else if (data instanceof Uint16Array) data[i] = k & 0xffff;
    else data[i] = k & 0xff;
  }
  return { dtype, shape, data };
}
