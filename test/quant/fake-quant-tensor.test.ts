// The device-side FP8 / INT8 / NVFP4 / MX activation fake quantization equals the host format code bit for bit
// (zeros of either sign count as equal), on every backend: values spread over and beyond the calibrated range,
// exact ties of the INT8 grid, all-zero and saturating NVFP4 blocks, zeros, negative zeros and subnormal
// quotients, in float32 and through bfloat16 activations.

import assert from 'node:assert/strict';
import { fakeQuantOnDevice } from '../../src/quant/fake-quant-tensor.js';
import { fakeQuantize } from '../../src/quant/formats/activations.js';
import { tensor, tidy } from '../../src/tensor/index.js';
import { Rng } from '../../src/tensor/random.js';
import { forEachBackend } from '../helpers/backends.js';

function sample(amax: number): Float32Array {
  const rng = new Rng(11);
  const v = Float32Array.from({ length: 4096 }, () => (rng.next() * 2.4 - 1.2) * amax);
  const s8 = Math.fround(amax / 127);
  // exact half-way points of the INT8 grid, both signs; zeros; tiny values; the clamp edges
  for (let k = 0; k < 64; k++) v[k] = Math.fround((k - 32 + 0.5) * s8);
  v.set([0, -0, 1e-30, -1e-30, amax, -amax, 2 * amax, -3 * amax], 64);
  v.fill(0, 80, 96); // an all-zero block of 16
  for (let k = 96; k < 112; k++) v[k] = ((k % 7) - 3) * 0.25 * amax; // E2M1 ties after scaling
  return v;
}

forEachBackend('device FP8 / INT8 / NVFP4 activation fake quantization equals the format code bit for bit', ({ backend }) => {
  for (const kind of ['fp8', 'int8', 'nvfp4'] as const) {
    for (const amax of [3.7, 0.011, 448]) {
      const x = sample(amax);
      const want = fakeQuantize(x, [64, 64], { format: kind, amax }).y;
      const got = tidy(() => fakeQuantOnDevice(kind, tensor(x, [64, 64], { device: backend }), amax)!.toFloat32Array());
      for (let i = 0; i < x.length; i++) {
        assert.ok(Object.is(got[i], want[i]) || (got[i] === 0 && want[i] === 0), `${kind} amax ${amax}: x=${x[i]} -> ${got[i]}, format code ${want[i]}`);
      }
      // bfloat16 activations: the same values (bf16-representable inputs), the result rounded to bf16 once
      const xb = tidy(() => tensor(x, [64, 64], { device: backend }).cast('bfloat16').cast('float32').toFloat32Array());
      const wantB = tidy(() => tensor(fakeQuantize(xb, [64, 64], { format: kind, amax }).y, [64, 64], { device: backend }).cast('bfloat16').cast('float32').toFloat32Array());
      const gotB = tidy(() => fakeQuantOnDevice(kind, tensor(xb, [64, 64], { device: backend }).cast('bfloat16'), amax)!.cast('float32').toFloat32Array());
      assert.deepEqual(Array.from(gotB, (v) => v + 0), Array.from(wantB, (v) => v + 0), `${kind} amax ${amax} bf16`);
    }
  }
  // FP8 per token: a scale per row, no calibration
  const x = sample(5);
  x.fill(0, 128, 192); // an all-zero row
  const want = fakeQuantize(x, [64, 64], { format: 'fp8-per-token' }).y;
  const got = tidy(() => fakeQuantOnDevice('fp8-per-token', tensor(x, [64, 64], { device: backend }), null)!.toFloat32Array());
  assert.deepEqual(Array.from(got, (v) => v + 0), Array.from(want, (v) => v + 0), 'fp8 per token');
  // MX: dynamic blocks of 32 with power-of-two scales; amax exactly a power of two times elem_max, tiny and
  // all-zero blocks, values straddling the E2M1 / e4m3 grids
  for (const kind of ['mxfp8', 'mxfp4'] as const) {
    for (const amax of [5, 448 * 4, 6 * 2 ** -3, 1e-36]) {
      const xm = sample(amax);
      xm.fill(0, 256, 288); // an all-zero block of 32
      xm[320] = kind === 'mxfp8' ? 448 * 8 : 6 * 8; // block amax exactly elem_max * 2^3
      for (let k = 384; k < 416; k++) xm[k] = Math.fround(((k % 9) - 4) * 1.7e-39); // subnormal block
      const wantM = fakeQuantize(xm, [64, 64], { format: kind }).y;
      const gotM = tidy(() => fakeQuantOnDevice(kind, tensor(xm, [64, 64], { device: backend }), null)!.toFloat32Array());
      for (let i = 0; i < xm.length; i++) {
        assert.ok(Object.is(gotM[i], wantM[i]) || (gotM[i] === 0 && wantM[i] === 0), `${kind} amax ${amax}: x=${xm[i]} -> ${gotM[i]}, format code ${wantM[i]}`);
      }
    }
  }
  assert.equal(fakeQuantOnDevice('mxfp4', tensor([1, 2], [1, 2], { device: backend }), null), null, 'rows that do not tile into 32 stay on the host');
  assert.equal(fakeQuantOnDevice('nvfp4', tensor([1, 2], [1, 2], { device: backend }), 1), null, 'rows that do not tile into 16 stay on the host');
});
