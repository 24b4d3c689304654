// The fused Linears of inference (src/nn/functional.ts linears / linearResidual / linearSwiglu; on CUDA the
// grouped GEMV with epilogues for few rows) must equal the plain ops they replace, bit for bit where the
// kernels are the same (bfloat16/float16 rows <= 8: the same GEMV kernel and rounding), within float
// tolerance otherwise; with gradients on they must fall back to the differentiable plain ops.

import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { linear, linears, linearResidual, linearSwiglu, normLinears, normLinearSwiglu, rmsNorm } from '../../src/nn/functional.js';
import { swiglu } from '../../src/tensor/ops/fused.js';
import { forEachBackend } from '../helpers/backends.js';

function maxRel(a: T.Tensor, b: T.Tensor): number {
  const x = a.toFloat32Array();
  const y = b.toFloat32Array();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]) / Math.max(1e-3, Math.abs(y[i])));
  return m;
}

forEachBackend('linears / linearResidual / linearSwiglu / normLinears / normLinearSwiglu equal the plain ops (1, 3 and 8 rows; 12 rows fall back)', ({ backend }) => {
  for (const dtype of ['bfloat16', 'float16', 'float32'] as const) {
    T.noGrad(() =>
      T.tidy(() => {
        const r = (shape: number[], seed: number, scale = 0.05): T.Tensor => T.mul(T.randn(shape, seed, { device: backend }), scale).cast(dtype);
        const [K, I] = [264, 96];
        const wq = r([64, K], 1);
        const wk = r([16, K], 2);
        const wv = r([24, K], 3);
        const gate = r([I, K], 4);
        const up = r([I, K], 5);
        const down = r([K, I], 6);
        for (const rows of [1, 3, 8, 12]) {
          const x = r([1, rows, K], 10 + rows, 1);
          const what = `${dtype} ${rows} rows`;
          const exact = dtype !== 'float32';
          const same = (got: T.Tensor, want: T.Tensor, name: string): void => {
            assert.deepEqual(got.shape, want.shape, `${what} ${name}: shape`);
            if (exact) assert.deepEqual(got.toStorageArray(), want.toStorageArray(), `${what} ${name}: bits`);
            else assert.ok(maxRel(got, want) < 1e-5, `${what} ${name}: ${maxRel(got, want)}`);
          };
          linears(x, [wq, wk, wv]).forEach((y, i) => same(y, linear(x, [wq, wk, wv][i]), `linears[${i}]`));
          const act = linearSwiglu(x, gate, up);
          same(act, swiglu(linear(x, gate), linear(x, up)), 'linearSwiglu');
          same(linearResidual(act, down, x), T.add(x, linear(act, down)), 'linearResidual');
          // the RMSNorm folded into the launch: the same bits as the norm kernel and then the Linears
          const nw = T.add(r([K], 20 + rows, 0.2), 1).cast(dtype);
          const normed = rmsNorm(x, nw, 1e-5);
          normLinears(x, nw, 1e-5, [wq, wk, wv]).forEach((y, i) => same(y, linear(normed, [wq, wk, wv][i]), `normLinears[${i}]`));
          same(normLinearSwiglu(x, nw, 1e-5, gate, up), swiglu(linear(normed, gate), linear(normed, up)), 'normLinearSwiglu');
        }
        // a hidden size where the norm kernel runs 256 threads (the prologue emulates 64 for K = 264 above)
        const Kw = 2048;
        const xw = r([1, 2, Kw], 30, 1);
        const nww = T.add(r([Kw], 31, 0.2), 1).cast(dtype);
        const ws = [r([40, Kw], 32), r([8, Kw], 33)];
        const normedW = rmsNorm(xw, nww, 1e-6);
        normLinears(xw, nww, 1e-6, ws).forEach((y, i) => {
          const want = linear(normedW, ws[i]);
          if (dtype !== 'float32') assert.deepEqual(y.toStorageArray(), want.toStorageArray(), `${dtype} K ${Kw} normLinears[${i}]: bits`);
          else assert.ok(maxRel(y, want) < 1e-5, `${dtype} K ${Kw} normLinears[${i}]`);
        });
      }),
    );
  }
  // with gradients the plain differentiable ops run
  T.tidy(() => {
    const x = T.randn([1, 1, 16], 1, { device: backend }).requireGrad();
    const w = T.randn([8, 16], 2, { device: backend }).requireGrad();
    const res = T.randn([1, 1, 8], 3, { device: backend });
    T.sum(linearResidual(x, w, res)).backward();
    assert.ok(x.grad !== null && w.grad !== null, 'no gradient through linearResidual');
    x.grad.dispose();
    w.grad.dispose();
  });
});
