// Views (reshape, permute, expand, slice, squeeze) share storage; contiguous/clone/concat copy.
// Each op's backward sits next to its forward.

import { Tensor } from '../tensor.js';
import { contiguousStrides, normAxis, numel, shapeStr } from '../shape.js';
import { empty, record, assertSameBackend } from './core.js';
import { sumTo } from './reduce.js';

function copyInto(src: Tensor, dst: Tensor): void {
  src.backend.copy(src, dst);
}

export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  return clone(x);
}

export function clone(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype, x.backend);
  copyInto(x, out);
  return record(out, 'clone', [x], (g) => [g]);
}

function inferShape(shape: readonly number[], n: number, from: readonly number[]): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(out.filter((_, i) => i !== neg));
    out[neg] = rest === 0 ? 0 : n / rest;
  }
  if (numel(out) !== n || out.some((d) => d < 0 || !Number.isInteger(d))) {
    throw new RangeError(`cannot reshape ${shapeStr(from)} (${n} elements) to ${shapeStr(shape)}`);
  }
  return out;
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(shape, x.size, x.shape);
  const src = contiguous(x);
  const out = src.viewAs(target, contiguousStrides(target), src.offset);
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.ndim) throw new RangeError(`permute: ${axes.length} axes for a tensor of rank ${x.ndim}`);
  const ax = axes.map((a) => normAxis(a, x.ndim));
  if (new Set(ax).size !== ax.length) throw new RangeError(`permute: repeated axis in [${axes.join(', ')}]`);
  const out = x.viewAs(ax.map((a) => x.shape[a]), ax.map((a) => x.strides[a]), x.offset);
  const inverse = new Array<number>(ax.length);
  ax.forEach((a, i) => (inverse[a] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, a: number, b: number): Tensor {
  const axes = x.shape.map((_, i) => i);
  const ia = normAxis(a, x.ndim);
  const ib = normAxis(b, x.ndim);
  axes[ia] = ib;
  axes[ib] = ia;
  return permute(x, axes);
}

/** Broadcasts to `shape` (numpy rules) with stride-0 views; -1 keeps a dimension. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new RangeError(`expand: cannot expand ${shapeStr(x.shape)} to fewer dims ${shapeStr(shape)}`);
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const src = i - lead;
    const d = shape[i] === -1 ? (src >= 0 ? x.shape[src] : 1) : shape[i];
    if (src < 0) {
      outShape.push(d);
      strides.push(0);
    } else if (x.shape[src] === d) {
      outShape.push(d);
      strides.push(x.strides[src]);
    } else if (x.shape[src] === 1) {
      outShape.push(d);
      strides.push(0);
    } else {
      throw new RangeError(`expand: cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    }
  }
  if (outShape.length === x.ndim && outShape.every((d, i) => d === x.shape[i])) return x;
  const out = x.viewAs(outShape, strides, x.offset);
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** x[..., start:end, ...] along `axis` (negative indices count from the end). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis(axis, x.ndim);
  const n = x.shape[a];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end < 0 ? end + n : end, s), n);
  const shape = [...x.shape];
  shape[a] = e - s;
  const out = x.viewAs(shape, x.strides, x.offset + s * x.strides[a]);
  return record(out, 'slice', [x], (g) => {
    const gx = empty(x.shape, g.dtype, g.backend);
    g.backend.fill(gx, 0);
    copyInto(g, gx.viewAs(shape, gx.strides, s * gx.strides[a]));
    return [gx];
  });
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.ndim + 1);
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.ndim);
  if (x.shape[a] !== 1) throw new RangeError(`squeeze: axis ${axis} of ${shapeStr(x.shape)} has size ${x.shape[a]}, not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new RangeError('concat: no tensors');
  const first = xs[0];
  assertSameBackend('concat', ...xs);
  const a = normAxis(axis, first.ndim);
  for (const t of xs) {
    if (t.ndim !== first.ndim || t.dtype !== first.dtype || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new RangeError(`concat: ${t.dtype}${shapeStr(t.shape)} does not fit ${first.dtype}${shapeStr(first.shape)} along axis ${axis}`);
    }
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, t) => s + t.shape[a], 0);
  const out = empty(shape, first.dtype, first.backend);
  let pos = 0;
  const starts: number[] = [];
  for (const t of xs) {
    starts.push(pos);
    const sub = [...shape];
    sub[a] = t.shape[a];
    copyInto(t, out.viewAs(sub, out.strides, pos * out.strides[a]));
    pos += t.shape[a];
  }
  return record(out, 'concat', xs, (g) => xs.map((t, i) => slice(g, a, starts[i], starts[i] + t.shape[a])));
}

/** Splits along an axis into pieces of the given sizes (views). */
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const out: Tensor[] = [];
  let pos = 0;
  for (const s of sizes) {
    out.push(slice(x, axis, pos, pos + s));
    pos += s;
  }
  if (pos !== x.shape[normAxis(axis, x.ndim)]) throw new RangeError(`split: sizes [${sizes.join(', ')}] do not add up to ${shapeStr(x.shape)}[${axis}]`);
  return out;
}
