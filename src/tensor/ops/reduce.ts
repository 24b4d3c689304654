// Reductions and row-wise normalisations (softmax, log-softmax), with their gradients.

import type { ReduceOp } from '../../backend/backend.js';
import type { Tensor } from '../tensor.js';
import { normAxes, normAxis, sameShape } from '../shape.js';
import { empty, record } from './core.js';
import { cast, compare, div, mul, sub, unary } from './elementwise.js';
import { expand, reshape } from './shape-ops.js';

function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = empty(keptShape, x.dtype, x.backend);
  x.backend.reduce(op, x, axes, out);
  return out;
}

function dropAxes(t: Tensor, shapeKept: readonly number[], axes: number[], keepdim: boolean): Tensor {
  if (keepdim) return t;
  return reshape(t, shapeKept.filter((_, i) => !axes.includes(i)));
}

export function sum(x: Tensor, axesIn?: number | number[], keepdim = false): Tensor {
  const axes = normAxes(axesIn, x.ndim);
  const kept = reduceRaw('sum', x, axes);
  record(kept, 'sum', [x], (g) => [expand(g, x.shape)]);
  return dropAxes(kept, kept.shape, axes, keepdim);
}

export function mean(x: Tensor, axesIn?: number | number[], keepdim = false): Tensor {
  const axes = normAxes(axesIn, x.ndim);
  let n = 1;
  for (const a of axes) n *= x.shape[a];
  return div(sum(x, axes, keepdim), n);
}

function extreme(op: 'max' | 'min', x: Tensor, axesIn: number | number[] | undefined, keepdim: boolean): Tensor {
  const axes = normAxes(axesIn, x.ndim);
  const kept = reduceRaw(op, x, axes);
  // gradient flows to every position equal to the extreme, split evenly among ties (like torch.amax)
  record(kept, op, [x], (g) => {
    const mask = cast(compare('eq', x, expand(kept, x.shape)), g.dtype);
    const count = reduceRaw('sum', mask, axes);
    return [mul(mask, expand(div(g, count), x.shape))];
  });
  return dropAxes(kept, kept.shape, axes, keepdim);
}

export const max = (x: Tensor, axes?: number | number[], keepdim = false): Tensor => extreme('max', x, axes, keepdim);
export const min = (x: Tensor, axes?: number | number[], keepdim = false): Tensor => extreme('min', x, axes, keepdim);

/**
 * max(|x|) over the axes in one pass (calibration's absolute max); NaN propagates, an empty reduction
 * gives 0. The gradient is torch.amax's on |x|: sign(x) times the share of g of each position whose |x|
 * equals the result, split evenly among ties.
 */
export function amax(x: Tensor, axesIn?: number | number[], keepdim = false): Tensor {
  const axes = normAxes(axesIn, x.ndim);
  const kept = reduceRaw('amax', x, axes);
  record(kept, 'amax', [x], (g) => {
    const mask = cast(compare('eq', unary('abs', x), expand(kept, x.shape)), g.dtype);
    const count = reduceRaw('sum', mask, axes);
    return [mul(mul(mask, cast(unary('sign', x), g.dtype)), expand(div(g, count), x.shape))];
  });
  return dropAxes(kept, kept.shape, axes, keepdim);
}

/** Index of the largest value along axis (int32, first on ties). */
export function argmax(x: Tensor, axisIn: number, keepdim = false): Tensor {
  const axis = normAxis(axisIn, x.ndim);
  const shape = x.shape.map((d, i) => (i === axis ? 1 : d));
  const out = empty(shape, 'int32', x.backend);
  x.backend.argmax(x, axis, out);
  return keepdim ? out : reshape(out, shape.filter((_, i) => i !== axis));
}

export function softmax(x: Tensor, axisIn = -1): Tensor {
  const axis = normAxis(axisIn, x.ndim);
  const out = empty(x.shape, x.dtype, x.backend);
  x.backend.softmax(x, axis, out);
  // dx = y * (g - sum(g * y))
  return record(out, 'softmax', [x], (g) => [mul(out, sub(g, sum(mul(g, out), axis, true)))]);
}

export function logSoftmax(x: Tensor, axisIn = -1): Tensor {
  const axis = normAxis(axisIn, x.ndim);
  const out = empty(x.shape, x.dtype, x.backend);
  x.backend.logSoftmax(x, axis, out);
  // dx = g - softmax(x) * sum(g)
  return record(out, 'logSoftmax', [x], (g) => [sub(g, mul(unary('exp', out), sum(g, axis, true)))]);
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length > 0 ? sum(g, axes, true) : g;
  return reshape(s, shape);
}
