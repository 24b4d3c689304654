// compressed-tensors checkpoint export (src/export/compressed-tensors-*): for each preset it writes, on the
// trained stories260K, export -> load back must give the fake-quantized model's logits and perplexity, with
// SmoothQuant / AWQ factors folded into the preceding RMSNorm / Linear; the INT4 pack-quantized int32 words and
// the NVFP4 bytes and scales are re-derived from the original weights and the recorded amax by a minimal
// implementation written here; unfoldable smoothing, presets compressed-tensors cannot express and broken
// checkpoints (missing or NaN scale, a config that disagrees with the tensors, a truncated file) are refused
// naming the layer or tensor; and mopt quantize --export-format compressed-tensors then mopt eval runs end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { QuantizedModel } from '../../src/quant/ptq.js';
import { loadModel } from '../../src/models/load.js';
import { presetRecipe } from '../../src/quant/recipes/index.js';
import { awqLite } from '../../src/quant/algorithms/awq.js';
import { widenLlama } from '../helpers/widen-llama.js';
import { exportCompressedTensors } from '../../src/export/compressed-tensors-export.js';
import { loadCompressedTensors } from '../../src/export/compressed-tensors-load.js';
import { exportFormat, readerFor } from '../../src/export/registry.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { logits, maxAbsDiff, quantized, tmp, windows, type ExportCase, brokenCopy } from '../helpers/export-cases.js';
import { int4Reference, nvfp4Reference } from '../helpers/quant-references.js';
import { DATA_SKIP, SHARED_DATA, STORIES_HF } from '../helpers/paths.js';
import { runMopt } from '../helpers/cli.js';
import { reciprocalExactAmax } from '../../src/export/compressed-tensors-tensors.js';

/**
 * stories260K has grouped-query attention (8 query heads, 4 KV heads), so SmoothQuant's and AWQ's per-channel
 * o_proj factors cannot fold into v_proj as they are; averaging them over each KV group (llm-compressor's
 * proposal for GQA) makes them foldable, and the fake-quantized model is then calibrated with those factors.
 */
function gqaFoldable(q: QuantizedModel): void {
  const { numHeads, numKvHeads, headDim } = q.model.config;
  const group = numHeads / numKvHeads;
  for (const [lin, c] of q.smooth) {
    if (!lin.endsWith('o_proj')) continue;
    const avg = new Float32Array(c.length);
    for (let kv = 0; kv < numKvHeads; kv++) {
      for (let d = 0; d < headDim; d++) {
        let s = 0;
        for (let g = 0; g < group; g++) s += c[(kv * group + g) * headDim + d]!;
        for (let g = 0; g < group; g++) avg[(kv * group + g) * headDim + d] = Math.fround(s / group);
      }
    }
    q.smooth.set(lin, avg);
  }
}

interface Case extends ExportCase {
  /** o_proj smoothing averaged per KV group before calibration */
  gqa?: boolean;
}
const CASES: Case[] = [
  { preset: 'fp8', kv: 'fp8' },
  { preset: 'int8_sq', gqa: true },
  { preset: 'int4_awq', group: 32, gqa: true },
  { preset: 'nvfp4', kv: 'fp8' },
  { preset: 'w4a16_nvfp4' },
  // weights an algorithm quantized itself (static scales recorded with the state); awq_full also smooths
  { preset: 'int4_awq', group: 32, algorithm: 'gptq' },
  { preset: 'int4_awq', group: 64, algorithm: 'awq_full', gqa: true },
  { preset: 'w4a16_nvfp4', algorithm: 'mse' },
];
/**
 * max |Δ logit| against the fake-quantized model: 0. The export makes q compute what the checkpoint holds
 * before q.apply() (prepareCompressedTensors): smoothing folded into the norms / v_proj / up_proj rows in the
 * checkpoint's dtype, and NVFP4 global amax values moved to ones whose s2 survives the 1 / s2 encoding.
 */
const TOL = 0;

test('compressed-tensors export -> load back equals the fake-quantized model (stories260K, every preset it writes)', { skip: DATA_SKIP }, () => {
  const split = windows(4, 2);
  const probe = split.heldOut[0]!;
  const measured: string[] = [];
  for (const c of CASES) {
    const dir = tmp();
    const name = `${c.preset}${c.kv ? `+kv ${c.kv}` : ''}${c.algorithm ? ` ${c.algorithm}` : ''}`;
    try {
      const q = quantized(c, split.calib, c.gqa ? gqaFoldable : undefined);
      const out = join(dir, 'ckpt');
      const s = exportCompressedTensors(q, STORIES_HF, out, { preset: c.preset, kvCache: c.kv ?? null });
      const smooth = new Map(q.smooth);
      q.apply();
      // the report's SQNR is the quantization error, not the row factors folded into v_proj / up_proj (~1.7 dB)
      for (const w of q.weightStats) assert.ok(w.sqnrDb > 10, `${name}: ${w.name} SQNR ${w.sqnrDb} dB`);
      const loaded = loadCompressedTensors(out);
      const diff = maxAbsDiff(logits(q.model, probe), logits(loaded.model, probe));
      const pw = perplexity(q.model, split.heldOut).ppl;
      const pg = perplexity(loaded.model, split.heldOut).ppl;
      measured.push(`${name}: max |Δlogit| ${diff.toExponential(2)}, |Δppl|/ppl ${(Math.abs(pg - pw) / pw).toExponential(2)}`);
      assert.ok(diff <= TOL, `${name}: logits differ by up to ${diff} (> ${TOL})`);
      assert.ok(Math.abs(pg - pw) / pw <= 1e-3, `${name}: ppl ${pg} vs fake-quant ${pw}`);
      const cfg = (JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { quantization_config: Record<string, unknown> }).quantization_config;
      assert.equal(cfg.quant_method, 'compressed-tensors');
      assert.equal(cfg.quantization_status, 'compressed');
      assert.equal(cfg.format, s.quantAlgo.split(' ')[1]);
      assert.equal((cfg.config_groups as { group_0: { format: string } }).group_0.format, cfg.format);
      assert.ok((cfg.ignore as string[]).includes('lm_head'));
      assert.equal(cfg.kv_cache_scheme === null, c.kv === undefined);
      assert.ok(readdirSync(out).includes('tokenizer.json'));
      assert.equal(readerFor(out)?.name, 'compressed-tensors');
      const f = SafetensorsFile.open(join(out, 'model.safetensors'));
      assert.ok(!f.names().some((n) => n.endsWith('pre_quant_scale')), 'smoothing is folded, never written');
      if (c.gqa) {
        // q/k/v's shared factors went into input_layernorm's weight: g * c, rounded once to the source dtype
        const src = SafetensorsFile.open(join(STORIES_HF, 'model.safetensors'));
        const g = src.read('model.layers.1.input_layernorm.weight').data as Float32Array;
        const cq = smooth.get('model.layers.1.self_attn.q_proj')!;
        assert.deepEqual(f.read('model.layers.1.input_layernorm.weight').data, Float32Array.from(g, (v, j) => Math.fround(v * cq[j]!)));
        src.close();
      }
      f.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  process.stdout.write(`# ${measured.join('\n# ')}\n`);
});

test('quantizing for compressed-tensors leaves unfoldable smoothing out (GQA o_proj; down_proj before an NVFP4 up_proj), and the smoothed presets export and load back', { skip: DATA_SKIP }, () => {
  const split = windows(4, 1);
  const probe = split.heldOut[0]!;
  const dir = tmp();
  try {
    const cases: ExportCase[] = [
      { preset: 'int8_sq', foldable: true },
      { preset: 'int8_sq', kv: 'fp8', foldable: true },
      { preset: 'int4_awq', group: 32, foldable: true },
      { preset: 'nvfp4', algorithm: 'awq_lite', foldable: true },
    ];
    for (const c of cases) {
      const q = quantized(c, split.calib);
      const lins = [...q.smooth.keys()];
      assert.ok(lins.length > 0 && lins.every((l) => !l.endsWith('o_proj')), `${c.preset}: smoothed ${lins.join(', ')}`);
      assert.ok(lins.some((l) => l.endsWith('q_proj')) && lins.some((l) => l.endsWith('gate_proj')), `${c.preset}: q/k/v and gate/up are still smoothed`);
      const out = join(dir, `${c.preset}-${c.kv ?? ''}-${c.algorithm ?? ''}`);
      exportCompressedTensors(q, STORIES_HF, out, { preset: c.preset, kvCache: c.kv ?? null });
      q.apply();
      const diff = maxAbsDiff(logits(q.model, probe), logits(loadCompressedTensors(out).model, probe));
      assert.ok(diff <= TOL, `${c.preset}: logits differ by up to ${diff}`);
    }
    // an NVFP4 up_proj cannot take down_proj's factors per row: on stories260K widened to 256 (its down_proj,
    // 172 wide here, then fits NVFP4's blocks) AWQ must leave down_proj unsmoothed too
    const wide = join(dir, 'wide');
    widenLlama(STORIES_HF, wide, 256);
    const qw = new QuantizedModel(loadModel(wide), { ...presetRecipe('nvfp4'), algorithm: 'awq_lite' });
    exportFormat('compressed-tensors').restrictPlan!(qw);
    assert.ok(qw.noSmoothing.has('model.layers.0.mlp.down_proj') && qw.noSmoothing.has('model.layers.0.self_attn.o_proj'));
    awqLite(qw, split.calib);
    assert.ok([...qw.smooth.keys()].every((l) => !l.endsWith('down_proj') && !l.endsWith('o_proj')) && qw.smooth.size > 0);
    qw.calibrate(split.calib, 'max');
    exportCompressedTensors(qw, wide, join(dir, 'wide-ct'), { preset: 'nvfp4', kvCache: null });
    qw.apply();
    const dw = maxAbsDiff(logits(qw.model, probe), logits(loadCompressedTensors(join(dir, 'wide-ct')).model, probe));
    assert.ok(dw <= TOL, `widened nvfp4 awq_lite: logits differ by up to ${dw}`);
    // the CLI sets it from --export-format
    const corpus = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');
    const cli = runMopt(['quantize', '--model', STORIES_HF, '--format', 'int4_awq', '--group-size', '32', '--calib-data', corpus, '--calib-samples', '4', '--seq-len', '64',
      '--eval-windows', '1', '--out', join(dir, 'cli'), '--export-format', 'compressed-tensors', '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(readerFor(join(dir, 'cli'))?.name, 'compressed-tensors');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('smoothing that does not fold exactly is refused naming the layer', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const dir = tmp();
  try {
    const attempt = (c: ExportCase, edit?: (q: QuantizedModel) => void): () => void => () => {
      exportCompressedTensors(quantized(c, split.calib, edit), STORIES_HF, join(dir, 'x'), { preset: c.preset, kvCache: c.kv ?? null });
    };
    // SmoothQuant / AWQ factors of o_proj differ between the two query heads of a KV group
    assert.throws(attempt({ preset: 'int4_awq', group: 32 }), /model\.layers\.0\.self_attn\.o_proj: its smoothing factors differ between query heads 0 and 1, which share KV head 0.*--export-format modelopt/);
    assert.throws(attempt({ preset: 'int8_sq' }), /model\.layers\.0\.self_attn\.o_proj: .*share KV head 0/);
    // folded into v_proj, the factors would scale the V an FP8 KV cache quantizes per tensor
    assert.throws(attempt({ preset: 'int8_sq', kv: 'fp8' }, gqaFoldable), /o_proj: .*the V the quantized KV cache stores/);
    // AWQ on NVFP4 weights: v_proj's global scale cannot take a factor per row
    assert.throws(attempt({ preset: 'nvfp4', algorithm: 'awq_lite' }, gqaFoldable), /o_proj: .*v_proj is nvfp4-quantized/);
    // siblings reading one norm with different factors
    assert.throws(attempt({ preset: 'int8_sq' }, (q) => {
      gqaFoldable(q);
      q.smooth.set('model.layers.2.self_attn.k_proj', Float32Array.from(q.smooth.get('model.layers.2.self_attn.k_proj')!, (v) => v * 2));
    }), /model\.layers\.2\.self_attn\.k_proj: its smoothing factors differ from those of model\.layers\.2\.self_attn\.q_proj/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exported INT4 pack-quantized words and NVFP4 bytes re-derived from the source weights and recorded amax (independent implementation)', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const src = SafetensorsFile.open(join(STORIES_HF, 'model.safetensors'));
  const dir = tmp();
  try {
    const w = (n: string): RawTensor => src.read(n);
    // INT4 (RTN, groups of 32): 8 values per int32 along the input dim, value + 8, element k at bits 4k
    const i4 = quantized({ preset: 'int4_awq', group: 32 }, split.calib);
    i4.smooth.clear(); // plain round-to-nearest: the words follow from the source weight alone
    exportCompressedTensors(i4, STORIES_HF, join(dir, 'i4'), { preset: 'int4_awq', kvCache: null });
    const o4 = SafetensorsFile.open(join(dir, 'i4', 'model.safetensors'));
    const g = w('model.layers.2.mlp.gate_proj.weight');
    const [rows, cols] = g.shape as [number, number];
    const { q, scales } = int4Reference(g.data as Float32Array, rows, cols, 32);
    const words = new Int32Array((rows * cols) / 8);
    for (let i = 0; i < rows * cols; i++) words[i >> 3] = words[i >> 3]! + (q[i]! + 8) * 2 ** (4 * (i % 8)) | 0;
    assert.deepEqual(o4.read('model.layers.2.mlp.gate_proj.weight_packed').data, words);
    assert.deepEqual(o4.read('model.layers.2.mlp.gate_proj.weight_packed').shape, [rows, cols / 8]);
    assert.deepEqual(o4.read('model.layers.2.mlp.gate_proj.weight_scale').data, scales);
    assert.deepEqual(o4.read('model.layers.2.mlp.gate_proj.weight_shape').data, BigInt64Array.of(BigInt(rows), BigInt(cols)));
    assert.ok(!o4.has('model.layers.2.mlp.gate_proj.weight'));
    o4.close();
    // NVFP4: q/k/v share one global scale from the max of their amaxes; compressed-tensors stores it as the
    // divisor 1 / (amax / 2688) (helpers.py generate_gparam: 448 * 6 / amax), Model Optimizer as amax / 2688
    const nv = quantized({ preset: 'nvfp4' }, split.calib);
    exportCompressedTensors(nv, STORIES_HF, join(dir, 'nv'), { preset: 'nvfp4', kvCache: null });
    const out = SafetensorsFile.open(join(dir, 'nv', 'model.safetensors'));
    const p = 'model.layers.1.self_attn';
    const amax = Math.max(...['q_proj', 'k_proj', 'v_proj'].map((m) => Math.max(...Array.from(w(`${p}.${m}.weight`).data as Float32Array, Math.abs))));
    const kw = w(`${p}.k_proj.weight`);
    const ref = nvfp4Reference(kw.data as Float32Array, kw.shape[0]!, kw.shape[1]!, amax);
    assert.deepEqual(out.read(`${p}.k_proj.weight_packed`).data, ref.codes);
    assert.deepEqual(out.read(`${p}.k_proj.weight_scale`).data, ref.scales);
    const gs = (out.read(`${p}.k_proj.weight_global_scale`).data as Float32Array)[0]!;
    assert.equal(gs, Math.fround(1 / ref.s2));
    assert.ok(Math.abs(gs * amax / 2688 - 1) < 1e-6, 'the global scale is 2688 / amax');
    const inAmax = nv.amaxValues()[`${p}.k_proj.input_quantizer`]!;
    const igs = (out.read(`${p}.k_proj.input_global_scale`).data as Float32Array)[0]!;
    // the spec's value (448 * 6 / amax, compressed-tensors' generate_gparam) to float32 precision, and exactly
    // the reciprocal of the amax / 2688 scale mopt quantized with (so the loaded model is the same model)
    assert.ok(Math.abs(igs * inAmax / 2688 - 1) < 1e-6, 'the input global scale is 2688 / amax');
    assert.equal(igs, Math.fround(1 / Math.fround(inAmax / 2688)));
    for (const m of ['q_proj', 'v_proj']) assert.equal((out.read(`${p}.${m}.weight_global_scale`).data as Float32Array)[0], gs);
    out.close();
  } finally {
    src.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NVFP4 global amax moves up to the nearest fp32 whose s2 survives the 1 / s2 encoding', () => {
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  const step = (v: number, d: number): number => ((f32[0] = v), (bits[0]! += d), f32[0]!);
  const roundTrips = (amax: number): boolean => {
    const s2 = Math.fround(amax / 2688);
    return Math.fround(1 / Math.fround(1 / s2)) === s2;
  };
  let seed = 12345;
  let moved = 0;
  for (let i = 0; i < 20000; i++) {
    seed = (seed * 48271) % 2147483647;
    const amax = Math.fround(1e-3 + (seed / 2147483647) * 40); // weight- and activation-like ranges
    const a = reciprocalExactAmax(amax);
    assert.ok(a >= amax && roundTrips(a), `${amax} -> ${a}`);
    // the smallest such fp32: every fp32 from amax up to the one before a fails
    for (let v = amax; v < a; v = step(v, 1)) assert.ok(!roundTrips(v), `${amax}: ${v} < ${a} already round-trips`);
    assert.ok(step(a, 0) === a && a <= step(amax, 64), `${amax} moved more than 64 ulps`);
    if (a !== amax) moved++;
  }
  assert.ok(moved > 1000 && moved < 5000, `${moved} of 20000 moved (about one in nine expected)`);
  assert.equal(reciprocalExactAmax(0), 0);
  assert.ok(Number.isNaN(reciprocalExactAmax(NaN))); // left for the checker, which names the tensor
  // 1 / (amax / 2688) overflows float32: one sentence naming the quantizer and the way out
  assert.throws(() => reciprocalExactAmax(1e-37, 'model.layers.0.mlp.up_proj.input_quantizer'), /up_proj\.input_quantizer: amax 1e-37 is too small .*--export-format modelopt/);
});

test('broken compressed-tensors checkpoints and inexpressible presets are refused naming the tensor, key or preset', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const dir = tmp();
  try {
    const good = join(dir, 'good');
    exportCompressedTensors(quantized({ preset: 'nvfp4' }, split.calib), STORIES_HF, good, { preset: 'nvfp4', kvCache: null });
    const make = (name: string, edit: (t: Map<string, RawTensor>) => void, qc?: (c: Record<string, unknown>) => void): string =>
      brokenCopy<{ quantization_config: Record<string, unknown> }>(good, dir, name, edit, qc && { file: 'config.json', edit: (c) => qc(c.quantization_config) });
    const o = 'model.layers.0.self_attn.o_proj';
    const scalar = (v: number): RawTensor => ({ dtype: 'float32', shape: [1], data: Float32Array.of(v) });
    assert.throws(() => loadCompressedTensors(make('missing', (t) => t.delete(`${o}.weight_global_scale`))), new RegExp(`${o}.weight_global_scale is missing`));
    assert.throws(() => loadCompressedTensors(make('nan', (t) => t.set(`${o}.input_global_scale`, scalar(NaN)))), new RegExp(`${o}.input_global_scale holds NaN`));
    assert.throws(() => loadCompressedTensors(make('zero', (t) => t.set(`${o}.weight_global_scale`, scalar(0)))), new RegExp(`${o}.weight_global_scale holds 0 .*finite and positive`));
    assert.throws(
      () => loadCompressedTensors(make('unshared', (t) => t.set('model.layers.0.self_attn.k_proj.weight_global_scale', scalar(7)))),
      /k_proj\.weight_global_scale \(7\) differs from model\.layers\.0\.self_attn\.q_proj\.weight_global_scale/,
    );
    // the config says FP8 (float-quantized) while the tensors are NVFP4
    const fp8Config = (c: Record<string, unknown>): void => {
      c.format = 'float-quantized';
      const g = (c.config_groups as { group_0: Record<string, unknown> }).group_0;
      g.format = 'float-quantized';
      g.weights = { num_bits: 8, type: 'float', strategy: 'tensor', symmetric: true, dynamic: false };
      g.input_activations = { num_bits: 8, type: 'float', strategy: 'tensor', symmetric: true, dynamic: false };
    };
    assert.throws(() => loadCompressedTensors(make('fp8', () => undefined, fp8Config)), /ignore lists model\.layers\.0\.mlp\.down_proj, which FP8 with this model's shapes quantizes; the config disagrees/);
    // the config says NVFP4A16 (no input quantization) while the tensors hold input_global_scale
    const a16 = (c: Record<string, unknown>): void => void ((c.config_groups as { group_0: Record<string, unknown> }).group_0.input_activations = null);
    assert.throws(() => loadCompressedTensors(make('a16', () => undefined, a16)), /model\.layers\.0\.\S+\.input_global_scale is in the checkpoint, but NVFP4A16 \(nvfp4-pack-quantized\) with this model's shapes has no such tensor for that layer: the config disagrees with the tensors/);
    assert.throws(() => loadCompressedTensors(make('ignore', () => undefined, (c) => (c.ignore = ['lm_head']))), /ignore omits model\.layers\.0\.mlp\.down_proj/);
    assert.throws(() => loadCompressedTensors(make('group', () => undefined, (c) => ((c.config_groups as { group_0: { weights: { group_size: number } } }).group_0.weights.group_size = 32))), /is not a scheme mopt loads/);
    assert.throws(() => loadCompressedTensors(make('status', () => undefined, (c) => (c.quantization_status = 'frozen'))), /quantization_status "frozen"/);
    const trunc = make('truncated', () => undefined);
    truncateSync(join(trunc, 'model.safetensors'), 4096);
    assert.throws(() => loadCompressedTensors(trunc), /model\.safetensors: .*truncated/);
    // presets and KV caches compressed-tensors cannot express: refused by check(), before any calibration
    const ct = exportFormat('compressed-tensors');
    for (const [preset, why] of [['w4a8_awq', /W4AFP8/], ['mxfp8', /ceil rule/], ['mxfp4', /ceil rule/], ['nvfp4_awq', /pre_quant_scale/]] as const) {
      assert.throws(() => ct.check({ preset, kvCache: null }), new RegExp(`cannot express the ${preset} preset: .*${why.source}.*presets that export: fp8, int8_sq, int4_awq, nvfp4, w4a16_nvfp4`));
    }
    assert.throws(() => ct.check({ preset: null, kvCache: null }), /export of a custom recipe is not supported/);
    assert.throws(() => ct.check({ preset: 'nvfp4', kvCache: 'nvfp4' }), /--kv-cache nvfp4 is not supported; .*FP8 per tensor/);
    const q = quantized({ preset: 'fp8' }, split.calib);
    assert.throws(() => exportCompressedTensors(q, STORIES_HF, STORIES_HF, { preset: 'fp8', kvCache: null }), /never modified/);
    assert.throws(() => exportCompressedTensors(q, STORIES_HF, good, { preset: 'fp8', kvCache: null }), /pass --overwrite/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mopt quantize --export-format compressed-tensors, mopt export and mopt eval on the checkpoint', { skip: DATA_SKIP }, () => {
  const cli = (...args: string[]) => runMopt(args);
  const dir = tmp();
  try {
    const text = join(SHARED_DATA, 'corpora', 'tinystories_val_subset.txt');
    const out = join(dir, 'ct');
    const qr = cli('quantize', '--model', STORIES_HF, '--format', 'nvfp4', '--kv-cache', 'fp8', '--calib-data', text, '--calib-samples', '2', '--seq-len', '64',
      '--eval-windows', '0', '--out', out, '--export-format', 'compressed-tensors');
    assert.equal(qr.code, 0, qr.stderr);
    assert.match(qr.stdout, /NVFP4 nvfp4-pack-quantized checkpoint \(compressed-tensors\)/);
    // the same quantization state written again by mopt export (the --out of quantize is also a state directory)
    const again = join(dir, 'again');
    const x = cli('export', '--from', out, '--out', again, '--export-format', 'compressed-tensors', '--json');
    assert.equal(x.code, 0, x.stderr);
    assert.equal((JSON.parse(x.stdout) as { format: string }).format, 'compressed-tensors');
    const ppl = (model: string): number => {
      const r = cli('eval', 'ppl', '--model', model, '--data', text, '--max-tokens', '256', '--json');
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { ppl: number }).ppl;
    };
    const a = ppl(out);
    assert.ok(Number.isFinite(a) && a < 2 * 3.71, `ppl ${a}`); // stories260K: 3.71 unquantized
    assert.equal(ppl(again), a);
    const refused = cli('quantize', '--model', STORIES_HF, '--format', 'mxfp8', '--calib-data', text, '--out', join(dir, 'mx'), '--export-format', 'compressed-tensors');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /compressed-tensors cannot express the mxfp8 preset/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
