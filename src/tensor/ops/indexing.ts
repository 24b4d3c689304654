// Gather / scatter-add / scatter along an axis (torch semantics) and row lookup (embeddings).

import type { Tensor } from '../tensor.js';
import { isFloatDType } from '../dtype.js';
import { normAxis, shapeStr } from '../shape.js';
import { assertSameBackend, empty, record } from './core.js';
import { expand, reshape } from './shape-ops.js';

function checkIndexTensor(op: string, index: Tensor): void {
  if (isFloatDType(index.dtype) || index.dtype === 'bool') {
    throw new TypeError(`${op}: index must be an integer tensor, got ${index.dtype}`);
  }
}

/** out[i][j] = x[index[i][j]][j] for axis 0; index has x's rank. */
export function gather(x: Tensor, axisIn: number, index: Tensor): Tensor {
  checkIndexTensor('gather', index);
  assertSameBackend('gather', x, index);
  const axis = normAxis(axisIn, x.ndim);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== axis && d > x.shape[i])) {
    throw new RangeError(`gather: index ${shapeStr(index.shape)} does not fit input ${shapeStr(x.shape)} on axis ${axis}`);
  }
  const out = empty(index.shape, x.dtype, x.backend);
  x.backend.gather(x, axis, index, out);
  return record(out, 'gather', [x], (g) => [scatterAdd(zerosOf(x, g), axis, index, g)]);
}

function zerosOf(x: Tensor, like: Tensor): Tensor {
  const z = empty(x.shape, like.dtype, like.backend);
  like.backend.fill(z, 0);
  return z;
}

/** A copy of `base` with `src` added at index positions (torch.scatter_add). */
export function scatterAdd(base: Tensor, axisIn: number, index: Tensor, src: Tensor): Tensor {
  checkIndexTensor('scatterAdd', index);
  const axis = normAxis(axisIn, base.ndim);
  const out = empty(base.shape, base.dtype, base.backend);
  base.backend.copy(base, out);
  base.backend.scatterAdd(out, axis, index, src);
  return record(out, 'scatterAdd', [base, src], (g) => [g, gatherNoGrad(g, axis, index)]);
}

/**
 * Writes src into `out` at index positions along an axis, in place (torch's out.scatter_(axis, index, src));
 * not differentiable. src is converted to out's dtype first. KV caches write new positions this way when
 * the position lives on the device (a recorded CUDA graph replays at every position).
 */
export function scatterInto(out: Tensor, axisIn: number, index: Tensor, src: Tensor): void {
  checkIndexTensor('scatter', index);
  assertSameBackend('scatter', out, index, src);
  const axis = normAxis(axisIn, out.ndim);
  const fits = index.ndim === out.ndim && src.ndim === out.ndim && index.shape.every((d, i) => d <= src.shape[i] && (i === axis || d <= out.shape[i]));
  if (!fits) throw new RangeError(`scatter: index ${shapeStr(index.shape)} does not fit out ${shapeStr(out.shape)} and src ${shapeStr(src.shape)} on axis ${axis}`);
  out.backend.scatter(out, axis, index, src.dtype === out.dtype ? src : src.cast(out.dtype));
}

function gatherNoGrad(x: Tensor, axis: number, index: Tensor): Tensor {
  const out = empty(index.shape, x.dtype, x.backend);
  x.backend.gather(x, axis, index, out);
  return out;
}

/** Rows of `table` [V, D] at integer `ids` [...] -> [..., D] (embedding lookup). */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  checkIndexTensor('embedding', ids);
  if (table.ndim !== 2) throw new RangeError(`embedding: table must be 2-D, got ${shapeStr(table.shape)}`);
  const d = table.shape[1];
  const flat = reshape(ids, [ids.size, 1]);
  const idx = expand(flat, [ids.size, d]);
  return reshape(gather(table, 0, idx), [...ids.shape, d]);
}
