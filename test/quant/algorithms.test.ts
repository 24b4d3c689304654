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
import { awqLite, awqScales, weightSalience } from '../../src/quant/algorithms/awq.js';
import { meanKl } from '../../src/quant/report.js';
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
