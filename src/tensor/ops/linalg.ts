// Matrix multiplication with numpy batching rules (1-D operands are promoted like torch.matmul).

import type { Tensor } from '../tensor.js';
import { broadcastShapes, shapeStr } from '../shape.js';
import { assertSameBackend, assertSameDType, empty, record } from './core.js';
import { expand, reshape, transpose } from './shape-ops.js';
import { sumTo } from './reduce.js';

export function matmul(a: Tensor, b: Tensor): Tensor {
  assertSameBackend('matmul', a, b);
  assertSameDType('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) throw new RangeError('matmul: operands must have at least one dimension');
  if (a.ndim === 1) {
    // vector @ vector is a dot product (0-d), like torch.matmul
    const shape = b.ndim === 1 ? [] : [...b.shape.slice(0, -2), b.shape[b.ndim - 1]];
    return reshape(matmul(reshape(a, [1, a.shape[0]]), b), shape);
  }
  if (b.ndim === 1) return reshape(matmul(a, reshape(b, [b.shape[0], 1])), a.shape.slice(0, -1));
  const k = a.shape[a.ndim - 1];
  if (b.shape[b.ndim - 2] !== k) {
    throw new RangeError(`matmul: inner dimensions differ, ${shapeStr(a.shape)} @ ${shapeStr(b.shape)}`);
  }
  const m = a.shape[a.ndim - 2];
  const n = b.shape[b.ndim - 1];
  // A batch of rows times one matrix is one big GEMM: fold the batch into m.
  if (b.ndim === 2 && a.ndim > 2) {
    const flat = reshape(a, [-1, k]);
    return reshape(matmul(flat, b), [...a.shape.slice(0, -1), n]);
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const ea = expand(a, [...batch, m, k]);
  const eb = expand(b, [...batch, k, n]);
  const out = empty([...batch, m, n], a.dtype, a.backend);
  a.backend.matmul(ea, eb, out);
  return record(out, 'matmul', [a, b], (g) => [
    a.requiresGrad ? sumTo(matmul(g, transpose(eb, -1, -2)), a.shape) : null,
    b.requiresGrad ? sumTo(matmul(transpose(ea, -1, -2), g), b.shape) : null,
  ]);
}
