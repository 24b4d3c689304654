// Activation calibrators against closed-form answers: running max, histogram percentile on a known
// distribution, histogram growth across batches, the entropy and MSE searches ignoring rare outliers
// that max would follow, and NaN/inf rejected with the quantizer's name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HistogramCalibrator, MaxCalibrator } from '../../src/quant/calib/calibrators.js';
import { fakeQuantAct } from '../../src/quant/scheme.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/tensor/random.js';

const int8 = (centers: Float32Array, amax: number): Float32Array => fakeQuantAct({ kind: 'int8', calibrated: true }, centers, [1, centers.length], amax);

test('max calibrator: running max of |x| over batches; NaN and inf are errors naming the quantizer', () => {
  const c = new MaxCalibrator('layer.input_quantizer');
  assert.equal(c.amax(), null);
  c.collect(new Float32Array([0.5, -3, 2]));
  c.collect(new Float32Array([]));
  c.collect(new Float32Array([-1, 2.5]));
  assert.equal(c.amax(), 3);
  c.collectAmax(4);
  assert.equal(c.amax(), 4);
  assert.throws(() => c.collect(new Float32Array([1, NaN])), (e: unknown) => e instanceof UserError && /layer\.input_quantizer saw NaN at element 1/.test(e.message));
  assert.throws(() => c.collect(new Float32Array([Infinity])), /saw Infinity/);
});

test('histogram percentile: the bin edge where the cumulative count reaches p', () => {
  // |x| uniform over 0 .. 10 in 100,000 steps: the 99th percentile is ~9.9, 50th ~5
  const x = Float32Array.from({ length: 100_000 }, (_, i) => (i % 2 ? -1 : 1) * (i / 10_000));
  for (const [p, want] of [[99, 9.9], [50, 5], [100, 10]] as const) {
    const c = new HistogramCalibrator('q', 'percentile', { percentile: p });
    c.collect(x);
    assert.ok(Math.abs(c.amax()! - want) <= 10 / 2048 + 1e-9, `p${p}: ${c.amax()} vs ${want}`);
  }
  assert.throws(() => {
    const c = new HistogramCalibrator('q', 'percentile', { percentile: 0 });
    c.collect(x);
    c.amax();
  }, /percentile 0 must be in/);
});

test('histogram grows by whole bins when a later batch is larger', () => {
  const c = new HistogramCalibrator('q', 'percentile', { percentile: 100, bins: 100 });
  c.collect(new Float32Array([1, 0.5]));
  c.collect(new Float32Array([3.005]));
  // bin width stays 0.01: 3.005 lands in the bin ending at 3.01
  assert.ok(Math.abs(c.amax()! - 3.01) < 1e-9, String(c.amax()));
});

test('entropy and mse searches clip the long tail that max follows', () => {
  // Laplace(0, 1): |x| is exponential, so 200,000 draws reach ~12 while 99% lie below 4.6; 8-bit grids
  // trade the rare tail for resolution in the bulk
  const rng = new Rng(5);
  const x = Float32Array.from({ length: 200_000 }, () => (rng.next() < 0.5 ? -1 : 1) * -Math.log(1 - rng.next()));
  const max = new MaxCalibrator('q');
  max.collect(x);
  const top = max.amax()!;
  const ent = new HistogramCalibrator('q', 'entropy');
  ent.collect(x);
  const mse = new HistogramCalibrator('q', 'mse', { quantize: int8 });
  mse.collect(x);
  for (const [name, a] of [['entropy', ent.amax()!], ['mse', mse.amax()!]] as const) {
    assert.ok(a > 4 && a < 0.9 * top, `${name} amax ${a} should clip the tail (max ${top}) but keep the bulk`);
  }
  // a uniform |x| has no tail: entropy keeps (nearly) the whole range
  const clean = Float32Array.from({ length: 50_000 }, (_, i) => ((i % 1000) / 1000) * (i % 2 ? 1 : -1));
  const e2 = new HistogramCalibrator('q', 'entropy');
  e2.collect(clean);
  assert.ok(e2.amax()! > 0.9, `entropy on uniform data: ${e2.amax()}`);
});

test('mse search needs the quantizer it measures with', () => {
  assert.throws(() => new HistogramCalibrator('q', 'mse'), /needs a centre quantizer/);
});
