// Post-training quantization of the trained stories260K model: the plan follows the recipe (and leaves
// layers that do not fit a format's blocks unquantized, with the reason), max calibration gives each input
// quantizer exactly the largest |x| its Linear saw, applied weights are the bit-exact format values, the
// saved state rebuilds the same model, and bad calibration input fails with one clear error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { presetRecipe, recipeFromData, recipeToData } from '../../src/quant/recipes/index.js';
import { calibrationSplit } from '../../src/quant/calib-data.js';
import { fakeQuantWeight } from '../../src/quant/scheme.js';
import * as fp8 from '../../src/quant/formats/fp8.js';
import * as nvfp4 from '../../src/quant/formats/nvfp4.js';
import { loadQuantized, saveState } from '../../src/quant/state.js';
import { amax, keep, maximum, noGrad, tensor, tidy, type Tensor } from '../../src/tensor/index.js';
import { UserError } from '../../src/util/errors.js';
import { DATA_SKIP, FIXTURES, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';

const TEXT = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');
const opts = { skip: DATA_SKIP };

function calibRows(): number[][] {
  return calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), TEXT, 3, 128, 1).calib;
}

function logits(q: QuantizedModel, row: readonly number[]): Float32Array {
  return noGrad(() => tidy(() => q.model.forward(tensor(row, [1, row.length], { dtype: 'int32' })).toFloat32Array()));
}

test('fp8 PTQ of stories260K: exact max calibration, bit-exact weights, state round trip', opts, () => {
  const rows = calibRows();
  assert.equal(rows.length, 3);
  const model = loadModel(STORIES_HF);
  // reference: the largest |x| each Linear sees, collected with an independent hook
  const seen = new Map<string, Tensor>();
  model.linearHook = (name, x) => {
    const prev = seen.get(name);
    seen.set(name, keep(prev === undefined ? amax(x) : maximum(prev, amax(x))));
    prev?.dispose();
    return undefined;
  };
  for (const r of rows) noGrad(() => tidy(() => void model.forward(tensor(r, [1, r.length], { dtype: 'int32' }))));
  model.linearHook = null;

  const q = new QuantizedModel(model, presetRecipe('fp8'));
  const names = q.quantizers.map((p) => p.name);
  assert.ok(names.includes('model.layers.0.self_attn.q_proj.input_quantizer'));
  assert.ok(!names.some((n) => n.includes('embed_tokens')), 'the tied head / embeddings are excluded by default');
  q.calibrate(rows, 'max');
  for (const p of q.calibrated()) {
    const lin = p.name.replace(/\.input_quantizer$/, '');
    assert.equal(p.amax, seen.get(lin)!.toFloat32Array()[0], p.name);
  }
  const key = 'model.layers.2.mlp.down_proj.weight';
  const orig = model.params.get(key)!.toFloat32Array();
  q.apply();
  const want = fakeQuantWeight({ kind: 'fp8', granularity: 'tensor' }, orig, [64, 172]);
  assert.deepEqual(q.model.params.get(key)!.toFloat32Array(), want);
  assert.ok(q.weightStats.length === 35 && q.weightStats.every((s) => s.sqnrDb > 25 && s.sqnrDb < 40), 'fp8 weights: ~31 dB SQNR');

  const dir = mkdtempSync(join(tmpdir(), 'mopt-ptq-'));
  try {
    saveState(dir, { source: STORIES_HF, preset: 'fp8', kvCache: null, calibrator: 'max', recipe: recipeToData(q.recipe), amax: q.amaxValues() });
    const again = loadQuantized(dir, {});
    assert.deepEqual(logits(again, rows[0]!.slice(0, 40)), logits(q, rows[0]!.slice(0, 40)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const t of seen.values()) t.dispose();
});

test('layers that do not fit the format blocks are left unquantized, with the reason', opts, () => {
  const q = new QuantizedModel(loadModel(STORIES_HF), presetRecipe('nvfp4', 'nvfp4'));
  const skipped = new Map(q.quantizers.filter((p) => p.skipped !== null).map((p) => [p.name, p.skipped]));
  // intermediate size 172 and head dim 8 are not multiples of 16
  assert.equal(skipped.get('model.layers.0.mlp.down_proj.weight_quantizer'), 'in dim 172 is not a multiple of 16');
  assert.equal(skipped.get('model.layers.0.mlp.down_proj.input_quantizer'), 'hidden size 172 is not a multiple of 16');
  assert.equal(skipped.get('model.layers.4.self_attn.v_bmm_quantizer'), 'hidden size 8 is not a multiple of 16');
  assert.equal(q.quantizers.find((p) => p.name === 'model.layers.0.mlp.up_proj.weight_quantizer')?.skipped, null);
  // a recipe that enables everything still never quantizes the tied head
  const all = new QuantizedModel(loadModel(STORIES_HF), recipeFromData({ quant_cfg: [['*weight_quantizer', { format: 'fp8' }]] }, 'test'));
  assert.equal(all.quantizers.find((p) => p.name === 'model.embed_tokens.weight_quantizer')?.skipped, 'the LM head is tied to the input embeddings');
});

test('calibration input errors are one clear message', opts, () => {
  const q = new QuantizedModel(loadModel(STORIES_HF), presetRecipe('fp8'));
  assert.throws(() => q.calibrate([], 'max'), (e: unknown) => e instanceof UserError && /no calibration batches/.test(e.message));
  const nv = new QuantizedModel(loadModel(STORIES_HF), presetRecipe('nvfp4'));
  assert.throws(() => nv.calibrate([[1, 2, 3]], 'entropy'), (e: unknown) => e instanceof UserError && /entropy calibrator applies to fp8 and int8 activations; model\.layers\.0\.self_attn\.q_proj\.input_quantizer is nvfp4/.test(e.message));
  const bad = loadModel(STORIES_HF);
  const w = bad.params.get('model.layers.1.self_attn.o_proj.weight')!;
  const nan = w.toFloat32Array().fill(NaN);
  bad.params.set('model.layers.1.self_attn.o_proj.weight', keep(tensor(nan, [...w.shape])));
  const qb = new QuantizedModel(bad, presetRecipe('fp8'));
  assert.throws(() => qb.calibrate([[1, 403, 407, 261]], 'max'), (e: unknown) => e instanceof UserError && /model\.layers\.1\.mlp\.gate_proj\.input_quantizer saw a non-finite activation \(amax NaN\)/.test(e.message));
  assert.throws(() => calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), TEXT, 2, 10_000_000, 0), (e: unknown) => e instanceof UserError && /shorter than one --seq-len window/.test(e.message));
});

test('fused siblings (q/k/v, gate/up) share NVFP4\'s global weight scale as the export fuses them; FP8 per tensor keeps its own', opts, () => {
  const p = 'model.layers.3.self_attn';
  const names = ['q_proj', 'k_proj', 'v_proj'];
  const shapes: [number, number][] = [[64, 64], [32, 64], [32, 64]];
  const run = (preset: 'w4a16_nvfp4' | 'fp8'): { orig: Float32Array[]; got: Float32Array[] } => {
    const model = loadModel(STORIES_HF);
    const orig = names.map((l) => model.params.get(`${p}.${l}.weight`)!.toFloat32Array());
    const q = new QuantizedModel(model, presetRecipe(preset));
    q.calibrate(calibRows().slice(0, 1), 'max');
    q.apply();
    return { orig, got: names.map((l) => q.model.params.get(`${p}.${l}.weight`)!.toFloat32Array()) };
  };
  const nv = run('w4a16_nvfp4');
  const amax = Math.max(...nv.orig.map((w) => w.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
  names.forEach((l, i) => assert.deepEqual(nv.got[i], nvfp4.fakeQuantize(nv.orig[i]!, shapes[i]!, amax), `nvfp4 ${l}`));
  const f8 = run('fp8');
  names.forEach((l, i) => assert.deepEqual(f8.got[i], fp8.fakeQuantize(f8.orig[i]!, shapes[i]!), `fp8 ${l}`));
});

test('every supported architecture quantizes: biases, q/k norms, sliding windows, untied heads (fp8 + FP8 KV, nvfp4)', () => {
  for (const name of ['llama-gqa', 'mistral-sliding', 'qwen2-bias-tied', 'qwen3-qknorm']) {
    for (const preset of ['fp8', 'nvfp4'] as const) {
      const dir = join(FIXTURES, 'hf', name);
      const base = loadModel(dir);
      const q = new QuantizedModel(loadModel(dir), presetRecipe(preset, preset));
      const vocab = base.config.vocabSize;
      const rows = [0, 1].map((s) => Array.from({ length: 24 }, (_, i) => (i * 37 + s * 11 + 5) % vocab));
      q.calibrate(rows, 'max');
      q.apply();
      const ids = rows[0]!;
      const run = (m: typeof base): Float32Array => noGrad(() => tidy(() => m.forward(tensor(ids, [1, ids.length], { dtype: 'int32' })).toFloat32Array()));
      const ref = run(base);
      const got = run(q.model);
      let num = 0;
      let den = 0;
      got.forEach((v, i) => {
        assert.ok(Number.isFinite(v), `${name} ${preset}: logit ${i} is ${v}`);
        num += (v - ref[i]!) ** 2;
        den += ref[i]! ** 2;
      });
      const rel = Math.sqrt(num / den);
      // FP8 keeps the logits within a few percent; 4-bit NVFP4 moves them more but stays correlated
      console.log(name, preset, rel);
      assert.ok(rel > 0 && rel < 9, `${name} ${preset}: relative logit change ${rel}`);
      assert.ok(q.quantizers.some((p) => p.role === 'kv' && p.scheme !== null), `${name}: KV quantizers enabled`);
    }
  }
});
