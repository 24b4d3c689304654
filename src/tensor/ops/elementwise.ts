// Elementwise ops with numpy broadcasting. The gradient tables are keyed by the backend's op unions,
// so a new unary/binary op without a derivative does not compile.

import type { BinaryOp, CompareOp, UnaryOp } from '../../backend/backend.js';
import type { Tensor, TensorOrScalar } from '../tensor.js';
import { broadcastShapes } from '../shape.js';
import { isFloatDType, type DType } from '../dtype.js';
import { asTensor, assertSameBackend, assertSameDType, empty, record, scalarLike } from './core.js';
import { expand } from './shape-ops.js';
import { sumTo } from './reduce.js';

/** d(out)/d(x) * g, given x, out = f(x) and the output gradient g. */
const UNARY_GRAD: { readonly [K in UnaryOp]: ((x: Tensor, y: Tensor, g: Tensor) => Tensor) | 'none' } = {
  neg: (_x, _y, g) => unary('neg', g),
  exp: (_x, y, g) => mul(g, y),
  log: (x, _y, g) => div(g, x),
  sqrt: (_x, y, g) => div(g, mul(y, 2)),
  rsqrt: (_x, y, g) => mul(g, mul(unary('neg', mul(y, mul(y, y))), 0.5)),
  sin: (x, _y, g) => mul(g, unary('cos', x)),
  cos: (x, _y, g) => mul(g, unary('neg', unary('sin', x))),
  tanh: (_x, y, g) => mul(g, sub(1, mul(y, y))),
  sigmoid: (_x, y, g) => mul(g, mul(y, sub(1, y))),
  silu: (x, _y, g) => {
    const s = unary('sigmoid', x);
    return mul(g, mul(s, add(1, mul(x, sub(1, s)))));
  },
  abs: (x, _y, g) => mul(g, unary('sign', x)),
  reciprocal: (_x, y, g) => mul(g, unary('neg', mul(y, y))),
  relu: (x, _y, g) => mul(g, cast(compare('gt', x, 0), g.dtype)),
  sign: 'none',
  square: (x, _y, g) => mul(g, mul(x, 2)),
};

/** Gradients w.r.t. (a, b) at the broadcast shape; reduced to each input's shape afterwards. */
const BINARY_GRAD: { readonly [K in BinaryOp]: (a: Tensor, b: Tensor, y: Tensor, g: Tensor) => [Tensor | null, Tensor | null] } = {
  add: (_a, _b, _y, g) => [g, g],
  sub: (_a, _b, _y, g) => [g, unary('neg', g)],
  mul: (a, b, _y, g) => [mul(g, b), mul(g, a)],
  div: (_a, b, y, g) => [div(g, b), unary('neg', div(mul(g, y), b))],
  // ties send the gradient to `a`, like a stable choice; torch splits it, which no model here relies on
  maximum: (a, b, _y, g) => {
    const m = cast(compare('ge', a, b), g.dtype);
    return [mul(g, m), mul(g, sub(1, m))];
  },
  minimum: (a, b, _y, g) => {
    const m = cast(compare('le', a, b), g.dtype);
    return [mul(g, m), mul(g, sub(1, m))];
  },
  pow: (a, b, y, g) => [
    a.requiresGrad ? mul(g, mul(b, pow(a, sub(b, 1)))) : null,
    b.requiresGrad ? mul(g, mul(y, unary('log', a))) : null,
  ],
};

export function unary(op: UnaryOp, x: Tensor): Tensor {
  if (!isFloatDType(x.dtype) && op !== 'neg' && op !== 'abs' && op !== 'sign' && op !== 'square') {
    throw new TypeError(`${op}: needs a floating-point tensor, got ${x.dtype}`);
  }
  const out = empty(x.shape, x.dtype, x.backend);
  x.backend.unary(op, x, out);
  const grad = UNARY_GRAD[op];
  if (grad === 'none') return out;
  return record(out, op, [x], (g) => [grad(x, out, g)]);
}

function broadcastPair(op: string, a: Tensor, b: Tensor): [Tensor, Tensor, number[]] {
  assertSameBackend(op, a, b);
  assertSameDType(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape);
  return [expand(a, shape), expand(b, shape), shape];
}

export function binary(op: BinaryOp, aIn: TensorOrScalar, bIn: TensorOrScalar): Tensor {
  const like = typeof aIn === 'number' ? (bIn as Tensor) : aIn;
  const a = asTensor(aIn, like);
  const b = asTensor(bIn, like);
  const [ea, eb, shape] = broadcastPair(op, a, b);
  const out = empty(shape, a.dtype, a.backend);
  a.backend.binary(op, ea, eb, out);
  return record(out, op, [a, b], (g) => {
    const [ga, gb] = BINARY_GRAD[op](a, b, out, g);
    return [ga && a.requiresGrad ? sumTo(ga, a.shape) : null, gb && b.requiresGrad ? sumTo(gb, b.shape) : null];
  });
}

export const add = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('add', a, b);
export const sub = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('sub', a, b);
export const mul = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('mul', a, b);
export const div = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('div', a, b);
export const pow = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('pow', a, b);
export const maximum = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('maximum', a, b);
export const minimum = (a: TensorOrScalar, b: TensorOrScalar): Tensor => binary('minimum', a, b);

/** Elementwise comparison; bool result, no gradient. */
export function compare(op: CompareOp, aIn: TensorOrScalar, bIn: TensorOrScalar): Tensor {
  const like = typeof aIn === 'number' ? (bIn as Tensor) : aIn;
  const a = asTensor(aIn, like);
  const b = asTensor(bIn, like);
  const [ea, eb, shape] = broadcastPair(op, a, b);
  const out = empty(shape, 'bool', a.backend);
  a.backend.compare(op, ea, eb, out);
  return out;
}

/** cond ? a : b, broadcasting all three. */
export function where(cond: Tensor, aIn: TensorOrScalar, bIn: TensorOrScalar): Tensor {
  const like = typeof aIn === 'number' ? (typeof bIn === 'number' ? null : bIn) : aIn;
  if (like === null) throw new TypeError('where: at least one of a, b must be a tensor');
  const a = asTensor(aIn, like);
  const b = asTensor(bIn, like);
  assertSameBackend('where', cond, a, b);
  assertSameDType('where', a, b);
  const shape = broadcastShapes(cond.shape, broadcastShapes(a.shape, b.shape));
  const c = cond.dtype === 'bool' ? cond : compare('ne', cond, 0);
  const out = empty(shape, a.dtype, a.backend);
  a.backend.where(expand(c, shape), expand(a, shape), expand(b, shape), out);
  return record(out, 'where', [a, b], (g) => {
    const zero = scalarLike(0, g);
    return [
      a.requiresGrad ? sumTo(where(c, g, zero), a.shape) : null,
      b.requiresGrad ? sumTo(where(c, zero, g), b.shape) : null,
    ];
  });
}

/** Converts to another dtype (round to nearest even; fp8 saturates). Gradient is cast back. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = empty(x.shape, dtype, x.backend);
  x.backend.copy(x, out);
  if (!isFloatDType(dtype)) return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}
