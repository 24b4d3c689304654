// Finite-difference gradient checking in float64: compares autograd's gradient of
// L = sum(f(inputs) * w) (w random, fixed) with central differences of L in every input element.

import assert from 'node:assert/strict';
import { Tensor, tensor, noGrad, mul, sum, type DType } from '../../src/tensor/index.js';
import { Rng } from '../../src/tensor/random.js';

export interface GradcheckOptions {
  eps?: number;
  rtol?: number;
  atol?: number;
}

export function randomTensor(shape: number[], rng: Rng, lo = -1, hi = 1, dtype: DType = 'float64'): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const vals = Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
  return tensor(vals, shape, { dtype });
}

export function gradcheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): void {
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-7;
  const rng = new Rng(1234);
  const leaves = inputs.map((t) => t.clone().requireGrad());
  const out = f(...leaves);
  const w = randomTensor([...out.shape], rng, -1, 1, out.dtype);
  const loss = sum(mul(out, w));
  loss.backward();
  leaves.forEach((leaf, li) => {
    const analytic = leaf.grad === null ? new Float64Array(leaf.size) : leaf.grad.toFloat64Array();
    const base = inputs[li].toFloat64Array();
    const numeric = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const evalAt = (delta: number): number =>
        noGrad(() => {
          const v = Float64Array.from(base);
          v[i] += delta;
          const xs = inputs.map((t, j) => (j === li ? tensor(v, [...t.shape], { dtype: t.dtype }) : t));
          return sum(mul(f(...xs), w)).item();
        });
      numeric[i] = (evalAt(eps) - evalAt(-eps)) / (2 * eps);
    }
    for (let i = 0; i < base.length; i++) {
      const diff = Math.abs(analytic[i] - numeric[i]);
      assert.ok(
        diff <= atol + rtol * Math.abs(numeric[i]),
        `${name}: input ${li} element ${i}: autograd ${analytic[i]} vs finite difference ${numeric[i]}`,
      );
    }
  });
}
