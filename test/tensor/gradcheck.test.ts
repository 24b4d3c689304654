// Every differentiable op's backward against central finite differences in float64.

import { test } from 'node:test';
import { UNARY_OPS, BINARY_OPS, type UnaryOp, type BinaryOp } from '../../src/backend/backend.js';
import * as T from '../../src/tensor/index.js';
import { Rng } from '../../src/tensor/random.js';
import { gradcheck, randomTensor } from '../helpers/gradcheck.js';

const rng = new Rng(7);
const r = (shape: number[], lo = -1, hi = 1): T.Tensor => randomTensor(shape, rng, lo, hi);

// input domain per unary op: keep away from kinks and poles so differences are meaningful
const UNARY_DOMAIN: { [K in UnaryOp]: [number, number] | 'no-grad' } = {
  neg: [-2, 2], exp: [-2, 2], log: [0.2, 3], sqrt: [0.2, 3], rsqrt: [0.2, 3], sin: [-3, 3], cos: [-3, 3],
  tanh: [-2, 2], sigmoid: [-4, 4], silu: [-4, 4], abs: [0.1, 2], reciprocal: [0.3, 2], relu: [0.1, 2],
  sign: 'no-grad', square: [-2, 2],
};

for (const op of UNARY_OPS) {
  const dom = UNARY_DOMAIN[op];
  if (dom === 'no-grad') continue;
  test(`grad ${op}`, () => {
    const x = r([3, 4], dom[0], dom[1]);
    // mixed signs for the piecewise ops
    const xs = op === 'abs' || op === 'relu' ? T.mul(x, T.tensor([1, -1, 1, -1], [4], { dtype: 'float64' })) : x;
    gradcheck(op, (a) => T.unary(op, a), [xs]);
  });
}

const BINARY_DOMAIN: { [K in BinaryOp]: [number, number, number, number] } = {
  add: [-1, 1, -1, 1], sub: [-1, 1, -1, 1], mul: [-1, 1, -1, 1], div: [-1, 1, 0.5, 2],
  maximum: [-1, 1, -1, 1], minimum: [-1, 1, -1, 1], pow: [0.5, 2, -1.5, 1.5],
};

for (const op of BINARY_OPS) {
  const [alo, ahi, blo, bhi] = BINARY_DOMAIN[op];
  test(`grad ${op} with broadcasting`, () => {
    gradcheck(op, (a, b) => T.binary(op, a, b), [r([2, 3, 4], alo, ahi), r([3, 1], blo, bhi)]);
    gradcheck(`${op} same shape`, (a, b) => T.binary(op, a, b), [r([5], alo, ahi), r([5], blo, bhi)]);
  });
}

test('grad where', () => {
  const cond = T.compare('gt', r([3, 4]), 0);
  gradcheck('where', (a, b) => T.where(cond, a, b), [r([3, 4]), r([4])]);
});

test('grad cast through float32 and back', () => {
  gradcheck('cast', (a) => T.cast(T.cast(a, 'float32'), 'float64'), [r([6])], { rtol: 1e-3, atol: 1e-5, eps: 1e-3 });
});

test('grad reductions', () => {
  gradcheck('sum all', (a) => T.sum(a), [r([3, 4])]);
  gradcheck('sum axes', (a) => T.sum(a, [0, 2], true), [r([2, 3, 4])]);
  gradcheck('mean', (a) => T.mean(a, -1), [r([3, 5])]);
  gradcheck('max', (a) => T.max(a, 1), [r([3, 5])]);
  gradcheck('min', (a) => T.min(a, [0, 1]), [r([3, 5])]);
  gradcheck('amax', (a) => T.amax(a, 1), [r([3, 5])]);
  gradcheck('amax all', (a) => T.amax(a), [r([2, 3, 4])]);
});

test('grad softmax and logSoftmax', () => {
  gradcheck('softmax', (a) => T.softmax(a, -1), [r([3, 6], -3, 3)]);
  gradcheck('softmax axis 0', (a) => T.softmax(a, 0), [r([4, 3], -3, 3)]);
  gradcheck('logSoftmax', (a) => T.logSoftmax(a, -1), [r([2, 3, 5], -3, 3)]);
});

test('grad matmul', () => {
  gradcheck('2d', (a, b) => T.matmul(a, b), [r([3, 4]), r([4, 5])]);
  gradcheck('batched broadcast', (a, b) => T.matmul(a, b), [r([2, 1, 3, 4]), r([3, 4, 2])]);
  gradcheck('batch times matrix', (a, b) => T.matmul(a, b), [r([2, 3, 4]), r([4, 2])]);
  gradcheck('vector', (a, b) => T.matmul(a, b), [r([4]), r([4, 3])]);
  gradcheck('transposed operand', (a, b) => T.matmul(a, T.transpose(b, 0, 1)), [r([3, 4]), r([5, 4])]);
});

test('grad indexing', () => {
  const idx = T.tensor([2, 0, 1, 2, 0, 0], [2, 3], { dtype: 'int64' });
  gradcheck('gather', (a) => T.gather(a, 0, idx), [r([3, 3])]);
  gradcheck('gather axis 1', (a) => T.gather(a, 1, T.tensor([1, 1, 0, 2], [2, 2], { dtype: 'int32' })), [r([2, 3])]);
  gradcheck('scatterAdd', (a, s) => T.scatterAdd(a, 0, idx, s), [r([3, 3]), r([2, 3])]);
  gradcheck('embedding', (w) => T.embedding(w, T.tensor([3, 1, 3, 0], [2, 2], { dtype: 'int32' })), [r([4, 3])]);
});

test('grad shape ops', () => {
  gradcheck('reshape', (a) => T.reshape(a, [4, -1]), [r([2, 6])]);
  gradcheck('permute', (a) => T.permute(a, [2, 0, 1]), [r([2, 3, 4])]);
  gradcheck('transpose+contiguous', (a) => T.contiguous(T.transpose(a, 0, 1)), [r([3, 4])]);
  gradcheck('expand', (a) => T.expand(a, [2, 3, 4]), [r([3, 1])]);
  gradcheck('slice', (a) => T.slice(a, 1, 1, -1), [r([2, 5])]);
  gradcheck('concat', (a, b) => T.concat([a, b], 1), [r([2, 2]), r([2, 3])]);
  gradcheck('split', (a) => T.split(a, [1, 3], 0)[1], [r([4, 2])]);
  gradcheck('unsqueeze/squeeze', (a) => T.squeeze(T.unsqueeze(a, 1), 1), [r([3, 2])]);
  gradcheck('clone', (a) => T.clone(a), [r([3])]);
});

test('grad composite: reused inputs accumulate', () => {
  gradcheck('x*x+x', (a) => T.add(T.mul(a, a), a), [r([4])]);
  gradcheck('rmsnorm', (a, w) => T.mul(T.mul(a, T.add(T.mean(T.mul(a, a), -1, true), 1e-5).rsqrt()), w), [r([2, 6]), r([6])]);
});
