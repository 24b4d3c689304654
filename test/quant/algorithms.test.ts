// SmoothQuant and AWQ lite: their scales follow Model Optimizer's formulas, smoothing leaves the float
// product unchanged, and on the trained stories260K model each beats the plain method it refines
// (SmoothQuant vs INT8 W8A8 with max calibration, AWQ vs round-to-nearest INT4) on held-out KL divergence.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { presetRecipe, applyGroupSize } from '../../src/quant/recipes/index.js';
import { calibrationSplit } from '../../src/quant/calib-data.js';
import { channelAmax, smoothQuant } from '../../src/quant/algorithms/smoothquant.js';
import { awqLite, awqLitePasses, awqScales, weightSalience } from '../../src/quant/algorithms/awq.js';
import { meanKl } from '../../src/quant/report.js';
import { gptq, gptqWeight } from '../../src/quant/algorithms/gptq.js';
import { staticQuantizer } from '../../src/quant/algorithms/block-quantizer.js';
import { mseWeight } from '../../src/quant/algorithms/weight-mse.js';
import { CLIP_RATIOS, awqClip, clipWeight } from '../../src/quant/algorithms/awq-clip.js';
import { searchBlockAmax } from '../../src/quant/algorithms/block-quantizer.js';
import { dequantizeWeight, fakeQuantWeight, quantizeWeight } from '../../src/quant/scheme.js';
import { loadQuantized, savePrequantized, saveState } from '../../src/quant/state.js';
import { recipeToData } from '../../src/quant/recipes/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Rng } from '../../src/tensor/random.js';
import { noGrad } from '../../src/tensor/index.js';
import { linear } from '../../src/nn/functional.js';
import { randn, tensor, tidy } from '../../src/tensor/index.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import type { Recipe } from '../../src/quant/recipes/types.js';

const opts = { skip: DATA_SKIP };

test('awq scales: block-normalised weight salience, clamp, and sqrt(max min) normalisation', () => {
  // one row, blocks of 2: |w| / block amax
  const sal = weightSalience(Float32Array.from([1, -2, 0, 4, 3, 3, -1, 0]), [2, 4], 2);
  assert.deepEqual(Array.from(sal), [(0.5 + 1) / 2, (1 + 1) / 2, (0 + 1) / 2, (1 + 0) / 2]);
  const act = Float32Array.from([4, 1, 0.25, 1]);
  const w = Float32Array.from([1, 1, 1, 1]);
  for (const alpha of [0, 0.3, 1]) {
    const s = awqScales(act, w, alpha);
    const max = Math.max(...s);
    const min = Math.min(...s);
    assert.ok(Math.abs(max * min - 1) < 1e-6, `α=${alpha}: normalised so that max·min = 1`);
    // ratios follow act^α / w^(1-α)
    assert.ok(Math.abs(s[0]! / s[1]! - 4 ** alpha) < 1e-5);
  }
});

function split(samples: number, held: number): { calib: number[][]; heldOut: number[][] } {
  return calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt'), samples, 128, held);
}

function quantize(recipe: Recipe, calib: number[][], algo: (q: QuantizedModel) => void): QuantizedModel {
  const q = new QuantizedModel(loadModel(STORIES_HF), recipe);
  algo(q);
  q.calibrate(calib, 'max');
  q.apply();
  return q;
}

test('SmoothQuant: s = w^(1-α) / a^α per input channel, float product unchanged, beats plain INT8 W8A8', opts, () => {
  const { calib, heldOut } = split(8, 4);
  const probe = new QuantizedModel(loadModel(STORIES_HF), presetRecipe('int8_sq'));
  const lin = 'model.layers.1.mlp.down_proj';
  const a = channelAmax(probe, calib, new Set([lin])).get(lin)!;
  const n = smoothQuant(probe, calib, 0.5);
  assert.equal(n, 35, 'every Linear with an INT8 input is smoothed (the tied head is not quantized)');
  const sib = (l: string): Float32Array => probe.smooth.get(`model.layers.2.${l}`)!;
  assert.deepEqual(sib('self_attn.q_proj'), sib('self_attn.v_proj'), 'q/k/v share one set of factors');
  assert.deepEqual(sib('mlp.gate_proj'), sib('mlp.up_proj'), 'gate/up share one set of factors');
  const w = probe.model.params.get(`${lin}.weight`)!;
  const [rows, cols] = w.shape as [number, number];
  const wv = w.toFloat32Array();
  const s = probe.smooth.get(lin)!;
  for (const j of [0, 7, cols - 1]) {
    let wj = 0;
    for (let i = 0; i < rows; i++) wj = Math.max(wj, Math.abs(wv[i * cols + j]!));
    assert.ok(Math.abs(s[j]! - Math.sqrt(wj) / Math.sqrt(a[j]!)) <= 1e-6 * s[j]!, `channel ${j}`);
  }
  // (x * s) (W / s)^T == x W^T
  tidy(() => {
    const x = randn([3, cols], 4);
    const ref = linear(x, w).toFloat32Array();
    const wd = Float32Array.from(wv, (v, i) => Math.fround(v / s[i % cols]!));
    const got = linear(probe.smoothed(lin, x), tensor(wd, [rows, cols])).toFloat32Array();
    ref.forEach((r, i) => assert.ok(Math.abs(got[i]! - r) <= 1e-5 * (1 + Math.abs(r)), `output ${i}`));
  });
  const base = loadModel(STORIES_HF);
  const plain = quantize({ ...presetRecipe('int8_sq'), algorithm: 'max' }, calib, () => undefined);
  const sq = quantize(presetRecipe('int8_sq'), calib, (q) => smoothQuant(q, calib, 0.5));
  const klPlain = meanKl(base, plain.model, heldOut).mean;
  const klSq = meanKl(base, sq.model, heldOut).mean;
  assert.ok(klSq < klPlain, `SmoothQuant KL ${klSq} should beat plain INT8 ${klPlain}`);
});

test('AWQ lite picks α per Linear and beats round-to-nearest INT4 (g32)', opts, () => {
  const { calib, heldOut } = split(8, 4);
  const recipe = applyGroupSize(presetRecipe('int4_awq'), 32);
  const base = loadModel(STORIES_HF);
  const rtn = quantize({ ...recipe, algorithm: 'max' }, calib, () => undefined);
  let chosen = new Map<string, number>();
  const awq = quantize(recipe, calib, (q) => {
    chosen = awqLite(q, calib);
  });
  assert.equal(chosen.size, 30, 'q/k/v/o/gate/up of 5 layers (down_proj: 172 columns do not tile into groups of 32)');
  for (const a of chosen.values()) assert.ok(a >= 0 && a <= 1 && Math.abs(a * 10 - Math.round(a * 10)) < 1e-9);
  const klRtn = meanKl(base, rtn.model, heldOut).mean;
  const klAwq = meanKl(base, awq.model, heldOut).mean;
  assert.ok(klAwq < klRtn, `AWQ KL ${klAwq} should beat RTN ${klRtn}`);
});

test('GPTQ: uncorrelated inputs give round-to-nearest; correlated inputs get a smaller output error', () => {
  const rng = new Rng(9);
  const rows = 16;
  const cols = 64;
  const w = Float32Array.from({ length: rows * cols }, () => rng.normal());
  const scheme = { kind: 'int4', groupSize: 32 } as const;
  const q = staticQuantizer(scheme, w, [rows, cols]);
  // H = I: no column can compensate another, so GPTQ is RTN with the static scales
  const eye = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) eye[i * cols + i] = 1;
  assert.deepEqual(gptqWeight(w, [rows, cols], eye, q, 32), fakeQuantWeight(scheme, w, [rows, cols]));
  // x = z A with a random mixing A: strongly correlated input channels
  const n = 512;
  const a = Float64Array.from({ length: cols * cols }, () => rng.normal() / 8);
  for (let i = 0; i < cols; i++) a[i * cols + i]! += 1;
  const x = new Float64Array(n * cols);
  for (let t = 0; t < n; t++) {
    const z = Array.from({ length: cols }, () => rng.normal());
    for (let j = 0; j < cols; j++) {
      let v = 0;
      for (let k = 0; k < cols; k++) v += z[k]! * a[k * cols + j]!;
      x[t * cols + j] = v;
    }
  }
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < n; t++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j]! += (2 * x[t * cols + i]! * x[t * cols + j]!) / n;
  const outErr = (qw: Float32Array): number => {
    let e = 0;
    for (let t = 0; t < n; t++) for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let j = 0; j < cols; j++) d += x[t * cols + j]! * (w[r * cols + j]! - qw[r * cols + j]!);
      e += d * d;
    }
    return e;
  };
  const eRtn = outErr(fakeQuantWeight(scheme, w, [rows, cols]));
  const eGptq = outErr(gptqWeight(w, [rows, cols], h, q, 32));
  assert.ok(eGptq < 0.8 * eRtn, `GPTQ output error ${eGptq} vs RTN ${eRtn}`);
  assert.throws(() => staticQuantizer({ kind: 'fp8', granularity: 'tensor' }, w, [rows, cols]), /quantizes int4 and nvfp4 weights/);
});

test('GPTQ on stories260K beats round-to-nearest INT4 and its weights survive the saved state', opts, () => {
  const { calib, heldOut } = split(4, 4);
  const recipe = { ...applyGroupSize(presetRecipe('int4_awq'), 32), algorithm: 'gptq' as const };
  const base = loadModel(STORIES_HF);
  const rtn = quantize({ ...recipe, algorithm: 'max' }, calib, () => undefined);
  const g = quantize(recipe, calib, (q) => assert.equal(gptq(q, calib), 30));
  const klRtn = meanKl(base, rtn.model, heldOut).mean;
  const klG = meanKl(base, g.model, heldOut).mean;
  assert.ok(klG < klRtn, `GPTQ KL ${klG} should beat RTN ${klRtn}`);
  const dir = mkdtempSync(join(tmpdir(), 'mopt-gptq-'));
  try {
    const weights = savePrequantized(dir, g);
    saveState(dir, { source: STORIES_HF, preset: 'int4_awq', kvCache: null, calibrator: 'max', recipe: recipeToData(recipe), amax: g.amaxValues(), weights });
    const again = loadQuantized(dir, {});
    const row = heldOut[0]!.slice(0, 32);
    const logitsOf = (q: QuantizedModel): Float32Array => noGrad(() => tidy(() => q.model.forward(tensor(row, [1, row.length], { dtype: 'int32' })).toFloat32Array()));
    assert.deepEqual(logitsOf(again), logitsOf(g));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weight MSE search: every block at least as close as max calibration, often closer', () => {
  const rng = new Rng(21);
  const rows = 8;
  const cols = 64;
  // heavy-tailed weights: a few large values per row make clipping pay
  const w = Float32Array.from({ length: rows * cols }, () => rng.normal() * (rng.next() < 0.05 ? 6 : 1));
  for (const scheme of [{ kind: 'int4', groupSize: 32 } as const, { kind: 'nvfp4' } as const]) {
    const bs = scheme.kind === 'int4' ? 32 : 16;
    const rtn = fakeQuantWeight(scheme, w, [rows, cols]);
    const { values: mse, scales } = mseWeight(scheme, w, [rows, cols]);
    // the recorded block amax values reproduce the searched weight through the format code (what the export writes)
    assert.deepEqual(dequantizeWeight(quantizeWeight(scheme, mse, [rows, cols], scales.globalAmax ?? undefined, scales.blockAmax)), mse);
    let better = 0;
    for (let b = 0; b < (rows * cols) / bs; b++) {
      let eR = 0;
      let eM = 0;
      for (let i = b * bs; i < (b + 1) * bs; i++) {
        eR += (w[i]! - rtn[i]!) ** 2;
        eM += (w[i]! - mse[i]!) ** 2;
      }
      assert.ok(eM <= eR + 1e-12, `${scheme.kind} block ${b}: ${eM} > ${eR}`);
      if (eM < eR * 0.999) better++;
    }
    assert.ok(better > 0, `${scheme.kind}: the search should improve some blocks`);
  }
});

test('AWQ clip: with uncorrelated unit inputs it is the squared-error search over clip ratios; on stories260K it beats RTN INT4', opts, () => {
  const rng = new Rng(33);
  const rows = 4;
  const cols = 64;
  const w = Float32Array.from({ length: rows * cols }, () => rng.normal() * (rng.next() < 0.05 ? 5 : 1));
  const x = new Float32Array(cols * cols);
  for (let t = 0; t < cols; t++) x[t * cols + t] = 1; // G = I in every block
  const scheme = { kind: 'int4', groupSize: 32 } as const;
  const sq = (_b: number, d: Float64Array): number => d.reduce((a, v) => a + v * v, 0);
  assert.deepEqual(clipWeight(scheme, w, [rows, cols], x), searchBlockAmax(scheme, w, [rows, cols], CLIP_RATIOS, sq));

  const { calib, heldOut } = split(4, 4);
  const recipe = applyGroupSize(presetRecipe('int4_awq'), 32);
  const base = loadModel(STORIES_HF);
  const rtn = quantize({ ...recipe, algorithm: 'max' }, calib, () => undefined);
  const clipped = quantize({ ...recipe, algorithm: 'awq_clip' }, calib, (q) => assert.equal(awqClip(q, calib), 30));
  const klRtn = meanKl(base, rtn.model, heldOut).mean;
  const klClip = meanKl(base, clipped.model, heldOut).mean;
  assert.ok(klClip < klRtn, `AWQ clip KL ${klClip} should beat RTN ${klRtn}`);
});

test('AWQ clip on NVFP4 clips fused siblings together: q/k/v and gate/up keep one global amax (one weight_scale_2 on export)', opts, () => {
  const { calib } = split(2, 0);
  const q = quantize({ ...presetRecipe('nvfp4'), algorithm: 'awq_clip' }, calib, (m) => awqClip(m, calib));
  const original = loadModel(STORIES_HF);
  for (const group of [['q_proj', 'k_proj', 'v_proj'].map((m) => `model.layers.1.self_attn.${m}`), ['gate_proj', 'up_proj'].map((m) => `model.layers.3.mlp.${m}`)]) {
    const g = group.map((l) => q.staticScalesOf(l)!.globalAmax!);
    assert.ok(g.every((v) => v === g[0]), `${group.join(', ')}: global amax ${g.join(', ')}`);
    // a ratio of the group's largest |w| (the search clips r x max over the group; no smoothing here)
    const top = Math.max(...group.map((l) => Math.max(...Array.from(original.params.get(`${l}.weight`)!.toFloat32Array(), Math.abs))));
    assert.ok(CLIP_RATIOS.some((r) => Math.abs(g[0]! - top * r) <= 1e-6 * top), `${g[0]} is no clip ratio of ${top}`);
  }
});

test('AWQ lite under a small candidate-memory budget (one unit per search pass) chooses exactly what one pass chooses', opts, () => {
  const { calib } = split(2, 0);
  const recipe = applyGroupSize(presetRecipe('int4_awq'), 32);
  const one = new QuantizedModel(loadModel(STORIES_HF), recipe);
  const chunked = new QuantizedModel(loadModel(STORIES_HF), recipe);
  assert.equal(awqLitePasses(one), 2);
  const passes = awqLitePasses(chunked, { candidateBytes: 1 });
  assert.ok(passes > 10, `${passes} passes`); // one per unit: q/k/v, o, gate/up (down_proj's 172 inputs fit no group of 32)
  let ticks = 0;
  const a = awqLite(one, calib);
  const b = awqLite(chunked, calib, () => ticks++, { candidateBytes: 1 });
  assert.equal(ticks, passes * calib.length);
  assert.deepEqual([...b], [...a]);
  for (const [lin, c] of one.smooth) assert.deepEqual(chunked.smooth.get(lin), c, lin);
});
