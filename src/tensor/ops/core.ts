// Helpers every op uses: output allocation, scalar promotion, and recording onto the autograd tape.

import type { Backend } from '../../backend/backend.js';
import { Tensor, type TensorOrScalar } from '../tensor.js';
import type { DType } from '../dtype.js';
import { needsGrad } from '../autograd.js';

/** A new contiguous, uninitialised tensor. */
export function empty(shape: readonly number[], dtype: DType, backend: Backend): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  return new Tensor(backend.alloc(dtype, n), shape);
}

/** A 0-d tensor holding `v` in `like`'s dtype and backend (how numbers enter binary ops). */
export function scalarLike(v: number, like: Tensor, dtype: DType = like.dtype): Tensor {
  const t = empty([], dtype, like.backend);
  like.backend.fill(t, v);
  return t;
}

export function asTensor(v: TensorOrScalar, like: Tensor): Tensor {
  return typeof v === 'number' ? scalarLike(v, like) : v;
}

/** Puts `out` on the tape when any input requires grad and grad mode is on. */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: (g: Tensor) => readonly (Tensor | null)[],
): Tensor {
  if (needsGrad(inputs)) {
    out.requiresGrad = true;
    out.gradNode = { op, inputs, backward };
  }
  return out;
}

export function assertSameBackend(op: string, ...ts: Tensor[]): void {
  const b = ts[0].backend;
  for (const t of ts) {
    if (t.backend !== b) throw new Error(`${op}: tensors are on different devices (${b.name} and ${t.backend.name})`);
  }
}

export function assertSameDType(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw new TypeError(`${op}: dtype mismatch (${a.dtype} and ${b.dtype}); cast one side explicitly`);
  }
}
