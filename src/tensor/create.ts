// Tensor constructors: from JS data, constants, ranges, seeded random draws, raw storage.

import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/registry.js';
import { allocStorage, DTYPE_INFO, type DType, type StorageArray } from './dtype.js';
import { encodeFromF32 } from './codecs.js';
import { numel, shapeStr } from './shape.js';
import { Tensor } from './tensor.js';
import { empty } from './ops/core.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string | Backend;
}

function backendOf(o: CreateOptions | undefined): Backend {
  const d = o?.device;
  return d === undefined ? getBackend('cpu') : typeof d === 'string' ? getBackend(d) : d;
}

/** A tensor holding the given storage array (its bit patterns, for narrow floats). Takes ownership. */
export function fromStorage(data: StorageArray, shape: readonly number[], dtype: DType, opts?: CreateOptions): Tensor {
  if (data.length !== numel(shape)) throw new RangeError(`${data.length} values do not fill shape ${shapeStr(shape)}`);
  return new Tensor(backendOf(opts).fromHost(dtype, data), shape);
}

/** A tensor from numbers (rounded/encoded to dtype, default float32). */
export function tensor(values: ArrayLike<number> | number, shape?: readonly number[], opts?: CreateOptions): Tensor {
  const dtype = opts?.dtype ?? 'float32';
  const flat = typeof values === 'number' ? [values] : values;
  const s = shape ?? (typeof values === 'number' ? [] : [flat.length]);
  if (flat.length !== numel(s)) throw new RangeError(`${flat.length} values do not fill shape ${shapeStr(s)}`);
  const data = allocStorage(dtype, flat.length);
  if (DTYPE_INFO[dtype].encoded) encodeFromF32(dtype, Float64Array.from(flat), data);
  else if (data instanceof BigInt64Array) for (let i = 0; i < flat.length; i++) data[i] = BigInt(Math.trunc(flat[i]));
  // set() takes any array-like: from a typed array it converts element by element without an intermediate
  // JS array (that copy was most of the time of building large weight tensors)
  else (data as Exclude<StorageArray, BigInt64Array>).set(flat);
  return fromStorage(data, s, dtype, opts);
}

export function full(shape: readonly number[], value: number, opts?: CreateOptions): Tensor {
  const t = empty(shape, opts?.dtype ?? 'float32', backendOf(opts));
  t.backend.fill(t, value);
  return t;
}

export const zeros = (shape: readonly number[], opts?: CreateOptions): Tensor => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts?: CreateOptions): Tensor => full(shape, 1, opts);

/** [start, end) in steps (default int32 when all arguments are integers). */
export function arange(start: number, end: number, step = 1, opts?: CreateOptions): Tensor {
  const n = Math.max(0, Math.ceil((end - start) / step));
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) vals[i] = start + i * step;
  const ints = Number.isInteger(start) && Number.isInteger(step);
  return tensor(vals, [n], { ...opts, dtype: opts?.dtype ?? (ints ? 'int32' : 'float32') });
}

/** Standard normal draws from the counter-based stream `seed` (same values on every backend). */
export function randn(shape: readonly number[], seed: number, opts?: CreateOptions): Tensor {
  const t = empty(shape, opts?.dtype ?? 'float32', backendOf(opts));
  t.backend.random('normal', seed, t);
  return t;
}

/** Uniform [0, 1) draws from the counter-based stream `seed`. */
export function rand(shape: readonly number[], seed: number, opts?: CreateOptions): Tensor {
  const t = empty(shape, opts?.dtype ?? 'float32', backendOf(opts));
  t.backend.random('uniform', seed, t);
  return t;
}
