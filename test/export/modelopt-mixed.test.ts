// Custom recipes in Model Optimizer's unified checkpoint (src/export/modelopt-plan.ts): several formats export
// as MIXED_PRECISION with quantized_layers (hf_quant_config.json and config.json as Model Optimizer writes
// them), one format as that quant_algo with exclude_modules; export -> load back gives the fake-quantized
// model's logits; recipes the format cannot express and broken mixed checkpoints are refused naming the layer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { exportModelopt } from '../../src/export/modelopt-export.js';
import { loadModelopt } from '../../src/export/modelopt-load.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { recipeFromData, DEFAULT_EXCLUSIONS, type Algorithm } from '../../src/quant/recipes/index.js';
import { brokenCopy, logits, maxAbsDiff, quantized, tmp, windows } from '../helpers/export-cases.js';
import { DATA_SKIP, STORIES_HF } from '../helpers/paths.js';

type Rules = [string, Record<string, unknown>][];
const NVFP4 = { format: 'nvfp4', block_size: 16, dynamic: true };
const FP8 = { format: 'fp8' };
const INT4_32 = { format: 'int4', block_size: 32 };
const both = (glob: string, s: Record<string, unknown>): Rules => [[`${glob}.weight_quantizer`, s], [`${glob}.input_quantizer`, s]];

/** A recipe from rules: everything off first, the default exclusions last (as the presets are built). */
function recipe(algorithm: Algorithm, ...rules: Rules): ReturnType<typeof recipeFromData> {
  return recipeFromData({ algorithm, quant_cfg: [['*', { enable: false }], ...rules, ...DEFAULT_EXCLUSIONS.map((g) => [g, { enable: false }])] }, 'test recipe');
}

// attention NVFP4 (W4A4) in layers 1-4, MLP gate/up FP8, layer 0 and every down_proj unquantized, FP8 KV cache
const NV_FP8 = recipe('max', ...both('model.layers.[1-4].self_attn.*_proj', NVFP4), ...both('*mlp.gate_proj', FP8), ...both('*mlp.up_proj', FP8), ['*[kv]_bmm_quantizer', FP8]);
// attention INT4 g32 weight-only with AWQ lite (pre_quant_scale), MLP gate/up FP8
const INT4_FP8 = recipe('awq_lite', ['*self_attn.*_proj.weight_quantizer', INT4_32], ...both('*mlp.gate_proj', FP8), ...both('*mlp.up_proj', FP8));

interface HfQuant { quantization: { quant_algo: string; kv_cache_quant_algo: string | null; quantized_layers?: Record<string, Record<string, unknown>>; exclude_modules?: string[]; group_size?: number } }
interface ConfigQuant { quantization_config: { quant_algo: string; config_groups: Record<string, { targets: string[]; weights?: Record<string, unknown>; input_activations?: Record<string, unknown> }>; quantized_layers?: Record<string, unknown>; ignore: string[]; kv_cache_scheme?: unknown } }
const json = <T>(dir: string, file: string): T => JSON.parse(readFileSync(join(dir, file), 'utf8')) as T;

test('custom recipes export as MIXED_PRECISION with quantized_layers and load back to the fake-quantized model', { skip: DATA_SKIP }, () => {
  const split = windows(4, 2);
  const dir = tmp();
  try {
    for (const [label, r] of [['nvfp4+fp8', NV_FP8], ['int4+fp8', INT4_FP8]] as const) {
      const q = quantized({ preset: label, recipe: r }, split.calib);
      const out = join(dir, label);
      const s = exportModelopt(q, STORIES_HF, out, { preset: null, kvCache: null });
      assert.equal(s.quantAlgo, 'MIXED_PRECISION');
      q.apply();
      const loaded = loadModelopt(out);
      const d = maxAbsDiff(logits(q.model, split.heldOut[0]!), logits(loaded.model, split.heldOut[0]!));
      assert.ok(d <= 1e-5, `${label}: logits differ by up to ${d}`);
      const pw = perplexity(q.model, split.heldOut).ppl;
      const pg = perplexity(loaded.model, split.heldOut).ppl;
      assert.ok(Math.abs(pg - pw) / pw <= 1e-3, `${label}: ppl ${pg} vs fake-quant ${pw}`);

      const hq = json<HfQuant>(out, 'hf_quant_config.json').quantization;
      const cq = json<ConfigQuant>(out, 'config.json').quantization_config;
      assert.deepEqual(Object.keys(hq), ['quant_algo', 'kv_cache_quant_algo', 'quantized_layers'], 'MIXED_PRECISION has no exclude_modules');
      const layers = hq.quantized_layers!;
      assert.deepEqual(layers['model.layers.2.mlp.gate_proj'], { quant_algo: 'FP8' });
      assert.equal(layers['model.layers.2.mlp.down_proj'], undefined);
      assert.deepEqual(cq.quantized_layers, layers);
      assert.deepEqual(cq.ignore, []);
      assert.equal(cq.quant_algo, 'MIXED_PRECISION');
      // one config group per distinct layer config, targets = its module names sorted
      const fp8Group = Object.values(cq.config_groups).find((g) => g.targets.includes('model.layers.0.mlp.up_proj'))!;
      assert.deepEqual(fp8Group, { input_activations: { dynamic: false, num_bits: 8, type: 'float' }, weights: { dynamic: false, num_bits: 8, type: 'float' }, targets: Object.keys(layers).filter((n) => n.endsWith('gate_proj') || n.endsWith('up_proj')).sort() });
      if (label === 'nvfp4+fp8') {
        assert.deepEqual(layers['model.layers.1.self_attn.q_proj'], { quant_algo: 'NVFP4', group_size: 16 });
        assert.equal(layers['model.layers.0.self_attn.q_proj'], undefined, 'layer 0 attention stays unquantized');
        assert.equal(hq.kv_cache_quant_algo, 'FP8');
        assert.deepEqual(cq.kv_cache_scheme, { dynamic: false, num_bits: 8, type: 'float' });
        assert.equal(Object.keys(cq.config_groups).length, 2);
        // an FP8 layer's weight_scale, re-derived: max |W| / 448
        const src = SafetensorsFile.open(join(STORIES_HF, 'model.safetensors'));
        const f = SafetensorsFile.open(join(out, 'model.safetensors'));
        const w = src.read('model.layers.3.mlp.up_proj.weight').data as Float32Array;
        assert.equal((f.read('model.layers.3.mlp.up_proj.weight_scale').data as Float32Array)[0], Math.fround(Math.max(...Array.from(w, Math.abs)) / 448));
        assert.ok(f.has('model.layers.0.self_attn.k_proj.k_scale'), 'K/V scales in every layer, attention quantized or not');
        src.close();
        f.close();
      } else {
        assert.deepEqual(layers['model.layers.0.self_attn.o_proj'], { quant_algo: 'W4A16_AWQ', group_size: 32, has_zero_point: false, pre_quant_scale: true });
        assert.deepEqual(Object.values(cq.config_groups).find((g) => g.targets.includes('model.layers.0.self_attn.o_proj'))!.weights, { dynamic: false, num_bits: 4, type: 'int', group_size: 32 });
        assert.equal(hq.kv_cache_quant_algo, null);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a custom recipe with one format exports as that quant_algo with exclude_modules; inexpressible recipes are refused', { skip: DATA_SKIP }, () => {
  const split = windows(2, 1);
  const dir = tmp();
  try {
    // FP8 everywhere but layer 4's MLP: one config, so quant_algo FP8 (what Model Optimizer writes for one format)
    const r = recipe('max', ...both('*_proj', FP8), ...both('model.layers.4.mlp.*', { format: 'fp8', enable: false }));
    const q = quantized({ preset: 'fp8-partial', recipe: r }, split.calib);
    const out = join(dir, 'fp8');
    assert.equal(exportModelopt(q, STORIES_HF, out, { preset: null, kvCache: null }).quantAlgo, 'FP8');
    const hq = json<HfQuant>(out, 'hf_quant_config.json').quantization;
    assert.equal(hq.quant_algo, 'FP8');
    assert.ok(hq.exclude_modules!.includes('model.layers.4.mlp.down_proj') && hq.exclude_modules!.includes('lm_head'));
    q.apply();
    assert.equal(maxAbsDiff(logits(q.model, split.heldOut[0]!), logits(loadModelopt(out).model, split.heldOut[0]!)), 0);
    // no Model Optimizer quant_algo for INT8 weight-only (W8A16 is not exported), nor for a quantized input alone
    const w8 = quantized({ preset: 'int8-wo', recipe: recipe('max', ['*mlp.up_proj.weight_quantizer', { format: 'int8', axis: 0 }]) }, split.calib);
    assert.throws(() => exportModelopt(w8, STORIES_HF, join(dir, 'w8'), { preset: null, kvCache: null }), /model\.layers\.0\.mlp\.up_proj: weights .*int8.* is no Model Optimizer quant_algo/);
    // an FP8 input whose weight stays unquantized: excluded, with its input_scale (mopt's extension, as W4A8's down_proj)
    const a8 = quantized({ preset: 'a8', recipe: recipe('max', ...both('*mlp.up_proj', FP8), ['*mlp.gate_proj.input_quantizer', FP8]) }, split.calib);
    const a8out = join(dir, 'a8');
    assert.equal(exportModelopt(a8, STORIES_HF, a8out, { preset: null, kvCache: null }).quantAlgo, 'FP8');
    assert.ok(json<HfQuant>(a8out, 'hf_quant_config.json').quantization.exclude_modules!.includes('model.layers.1.mlp.gate_proj'));
    a8.apply();
    assert.equal(maxAbsDiff(logits(a8.model, split.heldOut[0]!), logits(loadModelopt(a8out).model, split.heldOut[0]!)), 0);
    // one kv_cache_quant_algo for the model: K/V quantized in layer 0 only cannot be written
    const kv0 = quantized({ preset: 'kv0', recipe: recipe('max', ...both('*_proj', FP8), ['model.layers.0.self_attn.[kv]_bmm_quantizer', FP8]) }, split.calib);
    assert.throws(() => exportModelopt(kv0, STORIES_HF, join(dir, 'kv0'), { preset: null, kvCache: null }), /model\.layers\.1\.self_attn\.k_bmm_quantizer: .* cannot be written in Model Optimizer's format/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('broken MIXED_PRECISION checkpoints are refused naming the layer', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const dir = tmp();
  try {
    const good = join(dir, 'good');
    exportModelopt(quantized({ preset: 'nvfp4+fp8', recipe: NV_FP8 }, split.calib), STORIES_HF, good, { preset: null, kvCache: null });
    type Hf = HfQuant & { quantization: { quantized_layers: Record<string, Record<string, unknown>> } };
    const make = (name: string, edit: (t: Map<string, RawTensor>) => void, hf?: (c: Hf) => void): string => brokenCopy(good, dir, name, edit, hf && { file: 'hf_quant_config.json', edit: hf });
    const nv = 'model.layers.2.self_attn.v_proj';
    const up = 'model.layers.3.mlp.up_proj';
    const none = (): void => undefined;
    assert.throws(() => loadModelopt(make('missing', (t) => t.delete(`${nv}.weight_scale_2`))), new RegExp(`${nv}\\.weight_scale_2 is missing; NVFP4 needs it`));
    assert.throws(() => loadModelopt(make('missing-input', (t) => t.delete(`${up}.input_scale`))), new RegExp(`${up}\\.input_scale is missing; FP8 needs it`));
    assert.throws(() => loadModelopt(make('nan', (t) => t.set(`${up}.weight_scale`, { dtype: 'float32', shape: [], data: Float32Array.of(Infinity) }))), new RegExp(`${up}\\.weight_scale holds Infinity`));
    assert.throws(() => loadModelopt(make('unlisted', none, (c) => delete c.quantization.quantized_layers[up])), new RegExp(`${up}\\.(weight|input)_scale is in the checkpoint, but its quantized_layers .* do not quantize that layer`));
    assert.throws(() => loadModelopt(make('wrong-algo', none, (c) => (c.quantization.quantized_layers[up] = { quant_algo: 'NVFP4', group_size: 16 }))), new RegExp(`${up}\\.weight is float8_e4m3fn \\[.*\\], NVFP4 needs uint8`));
    assert.throws(() => loadModelopt(make('not-linear', none, (c) => (c.quantization.quantized_layers['model.layers.9.mlp.up_proj'] = { quant_algo: 'FP8' }))), /quantized_layers lists model\.layers\.9\.mlp\.up_proj, which is not a Linear of this model/);
    assert.throws(() => loadModelopt(make('misfit', none, (c) => (c.quantization.quantized_layers['model.layers.1.mlp.down_proj'] = { quant_algo: 'NVFP4', group_size: 16 }))), /quantized_layers lists model\.layers\.1\.mlp\.down_proj as NVFP4, but in dim 172 is not a multiple of 16/);
    assert.throws(() => loadModelopt(make('unknown', none, (c) => (c.quantization.quantized_layers[up] = { quant_algo: 'W4A8_NVFP4_FP8' }))), new RegExp(`quantized_layers\\["${up}"\\]\\.quant_algo "W4A8_NVFP4_FP8" is not one mopt loads`));
    assert.throws(() => loadModelopt(make('no-layers', none, (c) => delete (c.quantization as { quantized_layers?: unknown }).quantized_layers)), /MIXED_PRECISION needs quantization\.quantized_layers/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
