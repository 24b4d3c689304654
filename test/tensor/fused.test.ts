// Fused routines: gradients against float64 finite differences (CPU reference), and forward values
// against the same computation composed from primitive ops, on every backend under test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { rmsNorm, rope, swiglu, attention, crossEntropyLoss } from '../../src/tensor/ops/fused.js';
import { applyRope } from '../../src/models/rope.js';
import type { AttentionOptions } from '../../src/backend/backend.js';
import { Rng } from '../../src/tensor/random.js';
import { gradcheck, randomTensor } from '../helpers/gradcheck.js';
import { forEachBackend } from '../helpers/backends.js';

const rng = new Rng(99);
const r = (shape: number[], lo = -1, hi = 1): T.Tensor => randomTensor(shape, rng, lo, hi);

test('fused gradients match finite differences (float64, CPU)', () => {
  gradcheck('rmsNorm', (x, w) => rmsNorm(x, w, 1e-5), [r([3, 8]), r([8], 0.5, 1.5)]);
  const angles = r([5, 3], -3, 3);
  gradcheck('rope', (x) => rope(x, T.unary('cos', angles), T.unary('sin', angles)), [r([2, 2, 5, 6])]);
  gradcheck('swiglu', (g, u) => swiglu(g, u), [r([4, 6], -3, 3), r([4, 6])]);
  const o: AttentionOptions = { scale: 0.4, causal: true, past: 0, window: null };
  gradcheck('attention causal GQA', (q, k, v) => attention(q, k, v, o), [r([1, 4, 5, 3]), r([1, 2, 5, 3]), r([1, 2, 5, 3])]);
  gradcheck('attention window + past', (q, k, v) => attention(q, k, v, { ...o, past: 3, window: 3 }), [r([2, 2, 2, 4]), r([2, 1, 5, 4]), r([2, 1, 5, 4])]);
  const targets = T.tensor([2, -100, 0, 4], [4], { dtype: 'int32' });
  gradcheck('crossEntropy', (x) => crossEntropyLoss(x, targets), [r([4, 5], -2, 2)], { rtol: 1e-4, atol: 1e-6 });
});

/** LlamaRMSNorm from primitive ops: float32 statistics, cast back, times weight. */
function rmsNormComposed(x: T.Tensor, w: T.Tensor, eps: number): T.Tensor {
  const x32 = T.cast(x, 'float32');
  const variance = T.mean(T.mul(x32, x32), -1, true);
  return T.mul(w, T.cast(T.mul(x32, T.add(variance, eps).rsqrt()), x.dtype));
}

/** Mean cross-entropy from primitive ops (log-softmax + gather), ignoring -100 targets. */
function crossEntropyComposed(logits: T.Tensor, targets: T.Tensor): T.Tensor {
  const ids = targets.toArray();
  const keep: number[] = ids.map((i) => (i === -100 ? 0 : 1));
  const idx = T.tensor(ids.map((i) => (i === -100 ? 0 : i)), [ids.length, 1], { dtype: 'int32', device: logits.backend });
  const picked = T.gather(T.logSoftmax(logits, -1), 1, idx);
  const w = T.tensor(keep, [ids.length, 1], { device: logits.backend });
  return T.div(T.unary('neg', T.sum(T.mul(picked, w))), keep.reduce((a, b) => a + b));
}

function relErr(a: T.Tensor, b: T.Tensor): number {
  const x = a.toFloat64Array();
  const y = b.toFloat64Array();
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i] - y[i]) ** 2;
    den += y[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function rand(shape: number[], seed: number, device: T.CreateOptions['device'], scale = 1): T.Tensor {
  return T.mul(T.randn(shape, seed, { device }), scale);
}

forEachBackend('fused routines equal the composed primitive ops (float32)', ({ backend }) => {
  T.tidy(() => {
    const dev = backend;
    const x = rand([2, 3, 16], 1, dev);
    const w = T.add(rand([16], 2, dev, 0.1), 1);
    assert.ok(relErr(rmsNorm(x, w, 1e-5), rmsNormComposed(x, w, 1e-5)) < 1e-6, 'rmsNorm');
    const q = rand([2, 4, 5, 8], 3, dev);
    const ang = rand([5, 4], 4, dev);
    assert.ok(relErr(rope(q, T.unary('cos', ang), T.unary('sin', ang)), applyRope(q, T.unary('cos', ang), T.unary('sin', ang))) < 1e-6, 'rope');
    const g = rand([3, 7], 5, dev, 2);
    const u = rand([3, 7], 6, dev);
    assert.ok(relErr(swiglu(g, u), T.mul(g.silu(), u)) < 1e-6, 'swiglu');
    const k = rand([2, 2, 7, 8], 7, dev);
    const v = rand([2, 2, 7, 8], 8, dev);
    const o: AttentionOptions = { scale: 1 / Math.sqrt(8), causal: true, past: 2, window: 4 };
    // composed: repeat kv heads, mask, softmax
    const kr = T.reshape(T.expand(T.unsqueeze(k, 2), [2, 2, 2, 7, 8]), [2, 4, 7, 8]);
    const vr = T.reshape(T.expand(T.unsqueeze(v, 2), [2, 2, 2, 7, 8]), [2, 4, 7, 8]);
    const allowed: number[] = [];
    for (let s = 0; s < 5; s++) for (let t = 0; t < 7; t++) allowed.push(t <= s + 2 && s + 2 - t < 4 ? 1 : 0);
    const mask = T.tensor(allowed, [5, 7], { dtype: 'bool', device: dev });
    const scores = T.where(mask, T.mul(T.matmul(q, T.transpose(kr, 2, 3)), o.scale), -Infinity);
    const ref = T.matmul(T.softmax(scores, -1), vr);
    assert.ok(relErr(attention(q, k, v, o), ref) < 1e-6, 'attention');
    const logits = rand([6, 11], 9, dev, 3);
    const targets = T.tensor([1, 0, -100, 10, 5, 5], [6], { dtype: 'int32', device: dev });
    const a = crossEntropyLoss(logits, targets).item();
    const b = crossEntropyComposed(logits, targets).item();
    assert.ok(Math.abs(a - b) < 1e-6 * Math.abs(b), `crossEntropy ${a} vs ${b}`);
  });
});
