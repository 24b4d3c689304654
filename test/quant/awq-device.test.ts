// AWQ lite builds its candidate weights Q(W / c) on the model's device (fakeQuantWeightOnDevice) instead of
// with the host format code: on every backend the device result equals fakeQuantWeight bit for bit (signed
// zeros included) for each format AWQ searches (INT4 groups, W4A8, NVFP4; own and fused-group amax) on random
// and adversarial weights (ties of the INT4 / E2M1 grids, zeros of both signs, all-zero and all-equal groups,
// an all-zero tensor), weightFitsDevice sends to the host what the device would not reproduce, and awqLite
// chooses the same α, pre_quant_scale and calibrated state on either path, also when some Linears of a
// unit fall back to the host.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { columnStats, dividedStats, fakeQuantWeightOnDevice, weightFitsDevice } from '../../src/quant/fake-quant-tensor.js';
import { fakeQuantWeight, type WeightScheme } from '../../src/quant/scheme.js';
import { awqLite } from '../../src/quant/algorithms/awq.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { applyGroupSize, presetRecipe } from '../../src/quant/recipes/index.js';
import { calibrationSplit } from '../../src/quant/calib-data.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { loadModel } from '../../src/models/load.js';
import { tensor, tidy, type DType } from '../../src/tensor/index.js';
import { Rng } from '../../src/tensor/random.js';
import { forEachBackend } from '../helpers/backends.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';

const SCHEMES: WeightScheme[] = [
  { kind: 'int4', groupSize: 32 }, { kind: 'int4', groupSize: 64 }, { kind: 'int4', groupSize: 128 },
  { kind: 'w4a8', groupSize: 32 }, { kind: 'w4a8', groupSize: 128 }, { kind: 'nvfp4' },
];
const ROWS = 32;
const COLS = 256;

/** Random weights with adversarial rows: grid ties, signed zeros, all-zero and all-equal groups, tiny values. */
function weights(seed: number): Float32Array {
  const rng = new Rng(seed);
  const w = Float32Array.from({ length: ROWS * COLS }, () => (rng.next() * 2 - 1) * 0.05);
  const row = (r: number): number => r * COLS;
  // INT4 ties: groups with amax 7 (scale 1) holding half-integers of both signs
  for (let k = 0; k < 128; k++) w[row(0) + k] = k % 32 === 0 ? 7 : ((k % 14) - 6.5) * (k % 2 === 0 ? 1 : -1);
  // E2M1 ties: a tensor amax of 2688 gives s2 = 1; blocks with amax 6 then divide by 1
  w[row(1)] = 2688;
  const ties = [6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5, -6];
  for (let k = 16; k < 256; k++) w[row(1) + k] = ties[k % 16]! * (k < 128 ? 1 : 1 / 64);
  w.fill(0, row(2), row(3)); // an all-zero row: every group and block zero
  for (let k = 0; k < COLS; k += 2) w[row(2) + k] = -0;
  w.fill(-0.0123, row(3), row(3) + 128); // all-equal groups and blocks
  w.fill(0.5, row(3) + 128, row(4));
  for (let k = 0; k < COLS; k++) w[row(4) + k] = (k % 3 - 1) * 1e-30 * (1 + k / 256); // tiny, with signed zeros nearby
  for (let k = 0; k < COLS; k++) w[row(5) + k] = k % 16 === 0 ? 0.05 : -1e-4; // quotients that round to -0 (NVFP4)
  return w;
}

function assertBitsEqual(got: Float32Array, want: Float32Array, what: string): void {
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: [${Math.floor(i / COLS)}, ${i % COLS}] device ${got[i]}, host ${want[i]}`);
  }
}

forEachBackend('device INT4 / W4A8 / NVFP4 weight fake quantization equals fakeQuantWeight bit for bit', ({ backend }) => {
  const shape = [ROWS, COLS] as const;
  const cases: [string, Float32Array][] = [['random + adversarial', weights(3)], ['all zero', new Float32Array(ROWS * COLS).fill(-0)]];
  for (const [name, w] of cases) {
    const stats = dividedStats(columnStats(w, shape), new Float32Array(COLS).fill(1));
    for (const s of SCHEMES) {
      // own amax, then a fused group's larger shared one (W4A8 / NVFP4 take it; INT4 ignores it)
      for (const shared of [undefined, stats.amax * 1.7 + 1]) {
        assert.ok(weightFitsDevice(s, shape, stats, shared), `${s.kind} ${name} fits`);
        const want = fakeQuantWeight(s, w, shape, shared);
        const got = tidy(() => fakeQuantWeightOnDevice(s, tensor(w, [...shape], { device: backend }), stats.amax, shared).toFloat32Array());
        assertBitsEqual(got, want, `${JSON.stringify(s)} ${name} shared ${shared}`);
      }
    }
  }
});

test('weightFitsDevice: the host builds what the device ops would not reproduce; dividedStats is exact', () => {
  const w = weights(5);
  const shape = [ROWS, COLS] as const;
  const ok = dividedStats(columnStats(w, shape), new Float32Array(COLS).fill(1));
  const int4: WeightScheme = { kind: 'int4', groupSize: 32 };
  assert.equal(weightFitsDevice({ kind: 'mxfp4' }, shape, ok), false, 'formats AWQ does not search');
  assert.equal(weightFitsDevice(int4, [ROWS, 48], ok), false, 'columns that do not tile');
  assert.equal(weightFitsDevice(int4, [ROWS - 1, COLS], ok), false, 'odd out dim (INT4 packing)');
  assert.equal(weightFitsDevice({ kind: 'nvfp4' }, [ROWS, 24], ok), false, 'NVFP4 blocks of 16');
  const bad = (v: number, at = 7): Float32Array => Float32Array.from(w, (x, i) => (i === at ? v : x));
  for (const v of [NaN, Infinity]) assert.equal(weightFitsDevice(int4, shape, dividedStats(columnStats(bad(v), shape), new Float32Array(COLS).fill(1))), false, `${v}`);
  const tiny = dividedStats(columnStats(bad(3e-45), shape), new Float32Array(COLS).fill(1));
  assert.equal(weightFitsDevice(int4, shape, tiny), false, 'a group amax / 7 that may underflow');
  assert.equal(weightFitsDevice({ kind: 'nvfp4' }, shape, tiny), true, 'NVFP4 block scales do not underflow');
  assert.equal(weightFitsDevice({ kind: 'nvfp4' }, shape, ok, 1e-35), false, 'a global scale too small for the block divisors');
  // the stats of W / c follow from W's column stats: exactly the host's max |fround(W / c)|
  const rng = new Rng(2);
  const c = Float32Array.from({ length: COLS }, () => Math.fround(10 ** (rng.next() * 8 - 4)));
  const scaled = Float32Array.from(w, (v, i) => Math.fround(v / c[i % COLS]!));
  const st = dividedStats(columnStats(w, shape), c);
  assert.equal(st.amax, Math.max(...Array.from(scaled, Math.abs)));
  assert.ok(st.minNonzero <= Math.min(...Array.from(scaled, Math.abs).filter((a) => a > 0)));
});

/**
 * stories260K on the device; `tiny` puts the smallest subnormal into layer 0's k_proj, so its INT4 / W4A8
 * candidates come from the host (for the α whose factor c does not lift it above 2^-147) beside q/v's.
 */
function model(backend: string, dtype: DType, tiny: boolean): ReturnType<typeof loadModel> {
  const m = loadModel(STORIES_HF, { device: backend, dtype });
  if (tiny) {
    const name = 'model.layers.0.self_attn.k_proj.weight';
    const w = m.params.get(name)!;
    const v = w.toFloat32Array();
    v[5] = 2 ** -149;
    m.params.set(name, tensor(v, [...w.shape], { device: w.backend }).cast(dtype));
    w.dispose();
  }
  return m;
}

const RECIPES = [
  ['int4_awq g32', applyGroupSize(presetRecipe('int4_awq'), 32), 'float32', true],
  ['w4a8_awq g32 (fused FP8 stage amax)', applyGroupSize(presetRecipe('w4a8_awq'), 32), 'float32', true],
  ['nvfp4_awq in bfloat16 (fused global amax)', presetRecipe('nvfp4_awq'), 'bfloat16', false],
] as const;

forEachBackend('AWQ lite with device-built candidates chooses exactly what the host-built ones choose', async ({ name: backendName }, t) => {
  if (DATA_SKIP !== false) return t.skip(DATA_SKIP);
  const calib = calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), 2, 64, 0).calib;
  for (const [name, recipe, dtype, tiny] of RECIPES) {
    const run = (hostCandidates: boolean): { alphas: [string, number][]; smooth: Record<string, number[]>; amax: Record<string, number> } => {
      const q = new QuantizedModel(model(backendName, dtype, tiny), recipe);
      const alphas = [...awqLite(q, calib, undefined, { hostCandidates })];
      q.calibrate(calib, 'max');
      return { alphas, smooth: q.smoothValues(), amax: q.amaxValues() };
    };
    const host = run(true);
    const onDevice = run(false);
    assert.equal(host.alphas.length, 30, name);
    assert.deepEqual(onDevice, host, name);
  }
});
