// Layer-by-layer calibration (src/quant/layerwise.ts) against the whole-model path on stories260K: the same
// amax values, smoothing factors and algorithm weights, bit for bit, for max calibration (NVFP4 + FP8 KV),
// SmoothQuant, AWQ lite, AWQ full (two streams of hidden states), GPTQ, a histogram calibrator and a quantized
// LM head (its own last stage); the saved states are byte-identical. Peak live tensor bytes stay below the
// whole-model path's and within one layer + embeddings + activations; an interrupted run resumes to the same
// result, and progress of another run is refused.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, readModelConfig } from '../../src/models/load.js';
import { parameterSpecs } from '../../src/models/decoder.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { SafetensorsCheckpoint, writeSafetensors } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { applyGroupSize, presetRecipe, recipeFromData, recipeToData, type Recipe } from '../../src/quant/recipes/index.js';
import { calibrationSplit } from '../../src/quant/calib-data.js';
import { runAlgorithm } from '../../src/quant/algorithms/run.js';
import { calibrateLayerwise, installLayerwise, type LayerwiseOptions } from '../../src/quant/layerwise.js';
import { savePrequantized, saveState, STATE_FILE, WEIGHTS_FILE } from '../../src/quant/state.js';
import type { CalibratorName } from '../../src/quant/calib/calibrators.js';
import { liveTensorBytes, peakTensorBytes, resetPeakTensorBytes, DTYPE_INFO } from '../../src/tensor/index.js';
import { UserError } from '../../src/util/errors.js';
import { widenLlama } from '../helpers/widen-llama.js';
import { forEachBackend, type BackendUnderTest } from '../helpers/backends.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';

const TEXT = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');

function calibRows(windows: number, seqLen: number): number[][] {
  return calibrationSplit(Tokenizer.fromModelDir(STORIES_HF), TEXT, windows, seqLen, 0).calib;
}

interface Case {
  recipe: Recipe;
  calibrator?: CalibratorName;
  model?: string;
}

/** The whole-model path of mopt quantize: algorithm, then calibration, on the loaded model. */
function wholeModel(dir: string, c: Case, rows: number[][], device: string): QuantizedModel {
  const q = new QuantizedModel(loadModel(dir, { device }), c.recipe);
  runAlgorithm(q, c.recipe.algorithm, rows, { sqAlpha: 1 });
  q.calibrate(rows, c.calibrator ?? 'max');
  return q;
}

function layerwiseOptions(dir: string, c: Case, rows: number[][], device: string, progressDir: string | null = null): LayerwiseOptions {
  return { model: dir, dtype: 'float32', device, recipe: c.recipe, calibrator: c.calibrator ?? 'max', sqAlpha: 1, batches: rows, progressDir };
}

function layerwise(dir: string, c: Case, rows: number[][], device: string, progressDir: string | null = null): QuantizedModel {
  const r = calibrateLayerwise(layerwiseOptions(dir, c, rows, device, progressDir));
  const q = new QuantizedModel(loadModel(dir, { device }), c.recipe);
  installLayerwise(q, r);
  return q;
}

/** The files `mopt quantize` saves for q: mopt-quant.json and quantized-weights.safetensors (when any). */
function savedState(q: QuantizedModel, dir: string): { state: string; weights: Buffer | null } {
  const weights = savePrequantized(dir, q);
  saveState(dir, { ...(weights ? { weights } : {}), source: STORIES_HF, preset: null, kvCache: null, calibrator: 'max', recipe: recipeToData(q.recipe), amax: q.amaxValues(), smooth: q.smoothValues() });
  return { state: readFileSync(join(dir, STATE_FILE), 'utf8'), weights: weights ? readFileSync(join(dir, WEIGHTS_FILE)) : null };
}

/** Both quantization states equal: amax, smoothing factors and algorithm weights bit for bit, and the saved files byte for byte. */
function assertSameState(a: QuantizedModel, b: QuantizedModel, what: string): void {
  assert.deepStrictEqual(b.amaxValues(), a.amaxValues(), `${what}: amax`);
  assert.equal(JSON.stringify(b.smoothValues()), JSON.stringify(a.smoothValues()), `${what}: smoothing factors`);
  assert.deepStrictEqual(b.prequantizedLinears().sort(), a.prequantizedLinears().sort(), `${what}: algorithm weights`);
  for (const lin of a.prequantizedLinears()) {
    assert.deepStrictEqual(b.prequantizedValues(lin), a.prequantizedValues(lin), `${what}: ${lin} values`);
    assert.deepStrictEqual(b.prequantizedOriginal(lin), a.prequantizedOriginal(lin), `${what}: ${lin} original`);
    assert.deepStrictEqual(b.staticScalesOf(lin), a.staticScalesOf(lin), `${what}: ${lin} scales`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'mopt-layerwise-state-'));
  try {
    const sa = savedState(a, mkdtempSync(join(dir, 'a-')));
    const sb = savedState(b, mkdtempSync(join(dir, 'b-')));
    assert.equal(sb.state, sa.state, `${what}: mopt-quant.json`);
    assert.ok(sa.weights === null ? sb.weights === null : sb.weights !== null && sa.weights.equals(sb.weights), `${what}: ${WEIGHTS_FILE}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** stories260K with an untied LM head (a copy of the embeddings, scaled), so a recipe can quantize the head. */
function untiedStories(dst: string): string {
  const src = SafetensorsCheckpoint.open(STORIES_HF);
  const out = new Map<string, RawTensor>();
  try {
    for (const n of src.names()) out.set(n, src.read(n));
  } finally {
    src.close();
  }
  const e = out.get('model.embed_tokens.weight')!;
  out.set('lm_head.weight', { dtype: 'float32', shape: [...e.shape], data: Float32Array.from(e.data as Float32Array, (v, i) => v * (1 + (i % 7) / 10)) });
  writeSafetensors(join(dst, 'model.safetensors'), out);
  const cfg = JSON.parse(readFileSync(join(STORIES_HF, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dst, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: false }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) if (existsSync(join(STORIES_HF, f))) copyFileSync(join(STORIES_HF, f), join(dst, f));
  return dst;
}

/** A preset with the LM head's quantizers enabled like every other Linear's (rules appended: last match wins). */
function withHead(recipe: Recipe): Recipe {
  const d = recipeToData(recipe) as { algorithm: string; quant_cfg: [string, Record<string, unknown>][] };
  const w = d.quant_cfg.find(([g]) => g === '*weight_quantizer')![1];
  const x = d.quant_cfg.find(([g]) => g === '*input_quantizer')![1];
  return recipeFromData({ ...d, quant_cfg: [...d.quant_cfg, ['lm_head.weight_quantizer', w], ['lm_head.input_quantizer', x]] }, 'test recipe');
}

function skipWithoutData(t: TestContext): boolean {
  if (DATA_SKIP === false) return false;
  t.skip(DATA_SKIP);
  return true;
}

const CASES: [string, () => Case][] = [
  ['nvfp4 + fp8 KV cache, max', () => ({ recipe: presetRecipe('nvfp4', 'fp8') })],
  ['int8_sq (SmoothQuant)', () => ({ recipe: presetRecipe('int8_sq') })],
  ['int4_awq (AWQ lite), groups of 32', () => ({ recipe: applyGroupSize(presetRecipe('int4_awq'), 32) })],
  ['nvfp4 awq_full (AWQ lite + clip: two streams of hidden states)', () => ({ recipe: { ...presetRecipe('nvfp4_awq'), algorithm: 'awq_full' } })],
  ['nvfp4 GPTQ', () => ({ recipe: { ...presetRecipe('nvfp4'), algorithm: 'gptq' } })],
  ['w4a16_nvfp4 mse weight search', () => ({ recipe: { ...presetRecipe('w4a16_nvfp4'), algorithm: 'mse' } })],
  ['fp8 + fp8 KV, entropy calibrator', () => ({ recipe: presetRecipe('fp8', 'fp8'), calibrator: 'entropy' })],
];

for (const [name, make] of CASES) {
  forEachBackend(`layerwise calibration equals the whole-model path: ${name}`, (b, t) => {
    if (skipWithoutData(t)) return;
    const rows = calibRows(3, 64);
    const c = make();
    assertSameState(wholeModel(STORIES_HF, c, rows, b.name), layerwise(STORIES_HF, c, rows, b.name), name);
  });
}

forEachBackend('layerwise calibration: a quantized LM head is its own last stage (SmoothQuant on lm_head)', (b, t) => {
  if (skipWithoutData(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'mopt-untied-'));
  try {
    untiedStories(dir);
    const rows = calibRows(2, 64);
    const c: Case = { recipe: withHead(presetRecipe('int8_sq')) };
    const whole = wholeModel(dir, c, rows, b.name);
    assert.ok(whole.amaxValues()['lm_head.input_quantizer']! > 0 && whole.smooth.has('lm_head'), 'the recipe quantizes and smooths the head');
    assertSameState(whole, layerwise(dir, c, rows, b.name), 'int8_sq with lm_head');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Peak live tensor bytes of fn on the backend, above what was alive before it. */
function peakOf(b: BackendUnderTest, fn: () => void): number {
  const before = liveTensorBytes(b.backend);
  resetPeakTensorBytes(b.backend);
  fn();
  return peakTensorBytes(b.backend) - before;
}

forEachBackend('layerwise calibration peaks at one layer + embeddings + activations, below the whole model', (b, t) => {
  if (skipWithoutData(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'mopt-wide-'));
  try {
    // hidden and FFN width 256: a layer's Linears (~1 MB float32) dominate its activations
    widenLlama(STORIES_HF, dir, 256);
    const rows = calibRows(4, 64);
    const c: Case = { recipe: presetRecipe('nvfp4', 'fp8') };
    let whole: QuantizedModel | null = null;
    const wholePeak = peakOf(b, () => {
      whole = wholeModel(dir, c, rows, b.name);
    });
    for (const p of whole!.model.params.values()) p.dispose();
    let result: ReturnType<typeof calibrateLayerwise> | null = null;
    const livePrior = liveTensorBytes(b.backend);
    const layerPeak = peakOf(b, () => {
      result = calibrateLayerwise(layerwiseOptions(dir, c, rows, b.name));
    });
    assert.equal(liveTensorBytes(b.backend), livePrior, 'layerwise calibration frees every tensor it made');
    assert.ok(Object.keys(result!.amax).length > 0);

    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { hidden_size: number; intermediate_size: number; num_attention_heads: number };
    const specs = parameterSpecs(readModelConfig(dir));
    const bytes = (names: (n: string) => boolean): number => specs.filter((s) => names(s.name)).reduce((n, s) => n + s.shape.reduce((a, d) => a * d, 1) * DTYPE_INFO.float32.bytes, 0);
    const modelBytes = bytes(() => true);
    const layerBytes = bytes((n) => n.startsWith('model.layers.0.'));
    const embedBytes = bytes((n) => n === 'model.embed_tokens.weight');
    const tokens = rows.length * rows[0]!.length;
    const hiddenAll = tokens * cfg.hidden_size * 4; // one stream: every window's hidden states
    // one window through one layer: a few [seq, max(hidden, ffn)] temporaries and the [heads, seq, seq] scores
    const seq = rows[0]!.length;
    const window = 8 * seq * Math.max(cfg.hidden_size, cfg.intermediate_size) * 4 + 2 * cfg.num_attention_heads * seq * seq * 4;
    // the bound: one layer, the embedding matrix (stage 0 only), the inputs and outputs of every window, one window's forward
    const bound = layerBytes + embedBytes + 2 * hiddenAll + window;
    t.diagnostic(`whole-model peak ${wholePeak} B (model ${modelBytes} B); layerwise peak ${layerPeak} B; bound ${bound} B = layer ${layerBytes} + embeddings ${embedBytes} + 2 x activations ${hiddenAll} + one window ${window}`);
    assert.ok(wholePeak >= modelBytes, 'the whole-model path holds every parameter');
    assert.ok(layerPeak < wholePeak / 2, `layerwise peak ${layerPeak} B is well below the whole model's ${wholePeak} B`);
    assert.ok(layerPeak <= bound, `layerwise peak ${layerPeak} B within one layer + embeddings + activations (${bound} B)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('layerwise calibration resumes after an interruption with the same result, and refuses another run\'s progress', { skip: DATA_SKIP }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-layerwise-resume-'));
  try {
    const rows = calibRows(3, 64);
    const c: Case = { recipe: { ...presetRecipe('nvfp4', 'fp8'), algorithm: 'gptq' } };
    const progress = join(dir, 'progress');
    const stop = new Error('interrupted');
    const seen: number[] = [];
    assert.throws(() => calibrateLayerwise({ ...layerwiseOptions(STORIES_HF, c, rows, 'cpu', progress), onStageDone: (s) => {
      seen.push(s);
      if (s === 2) throw stop;
    } }), (e) => e === stop);
    assert.deepEqual(seen, [0, 1, 2]);
    // a different recipe, calibration set or model does not resume this progress
    const other: [string, LayerwiseOptions, RegExp][] = [
      ['recipe', layerwiseOptions(STORIES_HF, { recipe: presetRecipe('nvfp4', 'fp8') }, rows, 'cpu', progress), /different run \(its recipe differs\)/],
      ['windows', layerwiseOptions(STORIES_HF, c, rows.slice(1), 'cpu', progress), /different run \(its calibration windows differs\)/],
      ['calibrator', { ...layerwiseOptions(STORIES_HF, c, rows, 'cpu', progress), calibrator: 'percentile' }, /different run \(its calibrator differs\)/],
    ];
    for (const [what, o, re] of other) assert.throws(() => calibrateLayerwise(o), (e) => e instanceof UserError && re.test(e.message) && e.message.includes('delete'), what);
    // the same run resumes after stage 2 (layers 3 and 4 only) and ends as an uninterrupted run
    const resumed: number[] = [];
    const r = calibrateLayerwise({ ...layerwiseOptions(STORIES_HF, c, rows, 'cpu', progress), onStageDone: (s) => resumed.push(s) });
    assert.deepEqual(resumed, [3, 4]);
    const q = new QuantizedModel(loadModel(STORIES_HF), c.recipe);
    installLayerwise(q, r);
    assertSameState(wholeModel(STORIES_HF, c, rows, 'cpu'), q, 'resumed GPTQ');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
