// Model Optimizer unified checkpoint export (src/export): for each exportable preset on the trained
// stories260K, export -> load back must give the fake-quantized model's logits and perplexity; the packed
// NVFP4 and INT4 bytes are re-derived from the original weights and the recorded amax by a minimal
// implementation of formats.md written here; and broken checkpoints (missing or NaN scale, a config that
// disagrees with the tensors, a truncated file) are refused with a message naming the tensor.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { RawTensor } from '../../src/io/raw-tensor.js';
import { exportModelopt } from '../../src/export/modelopt-export.js';
import { loadModelopt } from '../../src/export/modelopt-load.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { e2m1ToF32 } from '../../src/tensor/codecs.js';
import { logits, quantized, tmp, windows, type ExportCase, brokenCopy } from '../helpers/export-cases.js';
import { int4Reference, mxfp4Reference, nvfp4Reference, packInt4Rows, w4a8Reference } from '../helpers/quant-references.js';
import { DATA_SKIP, STORIES_HF } from '../helpers/paths.js';

const CASES: ExportCase[] = [
  { preset: 'fp8', kv: 'fp8' }, { preset: 'int8_sq' }, { preset: 'int4_awq', group: 32 }, { preset: 'w4a8_awq', group: 32, kv: 'fp8' }, { preset: 'nvfp4', kv: 'fp8' },
  { preset: 'nvfp4_awq', kv: 'nvfp4' }, { preset: 'w4a16_nvfp4' }, { preset: 'mxfp8' }, { preset: 'mxfp4' },
  // weights the algorithm quantizes itself: exported from the values and the static scales it recorded
  { preset: 'int4_awq', group: 32, algorithm: 'gptq' }, { preset: 'int4_awq', group: 32, algorithm: 'awq_full' }, { preset: 'w4a16_nvfp4', algorithm: 'mse' },
  { preset: 'w4a16_nvfp4', algorithm: 'gptq' },
  { preset: 'nvfp4', algorithm: 'awq_clip' },
];

test('modelopt export -> load back equals the fake-quantized model (stories260K, every exportable preset)', { skip: DATA_SKIP }, () => {
  const split = windows(4, 2);
  const probe = split.heldOut[0]!;
  for (const c of CASES) {
    const dir = tmp();
    try {
      const q = quantized(c, split.calib);
      const out = join(dir, 'ckpt');
      const s = exportModelopt(q, STORIES_HF, out, { preset: c.preset, kvCache: c.kv ?? null });
      q.apply();
      const loaded = loadModelopt(out);
      const want = logits(q.model, probe);
      const got = logits(loaded.model, probe);
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - got[i]!));
      assert.ok(maxDiff <= 1e-5, `${c.preset} ${c.algorithm ?? ''}: logits differ by up to ${maxDiff}`);
      const pw = perplexity(q.model, split.heldOut).ppl;
      const pg = perplexity(loaded.model, split.heldOut).ppl;
      assert.ok(Math.abs(pg - pw) / pw <= 1e-3, `${c.preset}: ppl ${pg} vs fake-quant ${pw}`);
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string; quant_algo: string } };
      assert.equal(cfg.quantization_config.quant_method, 'modelopt');
      assert.equal(cfg.quantization_config.quant_algo, s.quantAlgo);
      assert.ok(readdirSync(out).includes('tokenizer.json'));
      if ((c.preset.includes('nvfp4') || c.preset === 'w4a8_awq') && c.algorithm !== 'awq_clip') {
        // fused siblings share one global scale (NVFP4) / FP8-stage scale (W4A8), as engines that fuse q/k/v and gate/up require
        const f = SafetensorsFile.open(join(out, 'model.safetensors'));
        const s2 = (m: string): number => (f.read(`model.layers.1.${m}.weight_scale_2`).data as Float32Array)[0]!;
        assert.ok(s2('self_attn.q_proj') === s2('self_attn.k_proj') && s2('self_attn.k_proj') === s2('self_attn.v_proj'), `${c.preset} ${c.algorithm}: q/k/v weight_scale_2 differ`);
        assert.equal(s2('mlp.gate_proj'), s2('mlp.up_proj'));
        f.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('a modelopt export above the shard size is sharded with an index and loads back', { skip: DATA_SKIP }, () => {
  const split = windows(2, 1);
  const dir = tmp();
  try {
    const q = quantized({ preset: 'fp8' }, split.calib);
    const out = join(dir, 'sharded');
    const s = exportModelopt(q, STORIES_HF, out, { preset: 'fp8', kvCache: null, maxShardBytes: 200_000 });
    assert.ok(s.files.length > 1, `expected several shards, got ${s.files.length}`);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    assert.ok(index.weight_map['model.layers.0.self_attn.q_proj.weight_scale'] !== undefined);
    q.apply();
    const probe = split.heldOut[0]!;
    const want = logits(q.model, probe);
    const got = logits(loadModelopt(out).model, probe);
    assert.deepEqual(Array.from(got), Array.from(want));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exported NVFP4, INT4 and W4A8 bytes re-derived from the source weights and recorded amax (independent implementation)', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const src = SafetensorsFile.open(join(STORIES_HF, 'model.safetensors'));
  const dir = tmp();
  try {
    // NVFP4: q/k/v share weight_scale_2 = max of their amaxes / 2688 (fused on export)
    const nv = quantized({ preset: 'nvfp4' }, split.calib);
    exportModelopt(nv, STORIES_HF, join(dir, 'nv'), { preset: 'nvfp4', kvCache: null });
    const out = SafetensorsFile.open(join(dir, 'nv', 'model.safetensors'));
    const p = 'model.layers.1.self_attn';
    const w = (n: string): RawTensor => src.read(n);
    const amax = Math.max(...['q_proj', 'k_proj', 'v_proj'].map((m) => Math.max(...Array.from(w(`${p}.${m}.weight`).data as Float32Array, Math.abs))));
    const kw = w(`${p}.k_proj.weight`);
    const ref = nvfp4Reference(kw.data as Float32Array, kw.shape[0]!, kw.shape[1]!, amax);
    assert.deepEqual(out.read(`${p}.k_proj.weight`).data, ref.codes);
    assert.deepEqual(out.read(`${p}.k_proj.weight_scale`).data, ref.scales);
    assert.equal((out.read(`${p}.k_proj.weight_scale_2`).data as Float32Array)[0], ref.s2);
    const inAmax = nv.amaxValues()[`${p}.k_proj.input_quantizer`]!;
    assert.equal((out.read(`${p}.k_proj.input_scale`).data as Float32Array)[0], Math.fround(inAmax / 2688));
    out.close();
    // INT4 (RTN, groups of 32): scale = group amax / 7, q = clamp(round-half-even(w / scale)), packed along the output dim
    const i4 = quantized({ preset: 'int4_awq', group: 32 }, split.calib);
    i4.smooth.clear(); // plain round-to-nearest: the bytes follow from the source weight alone
    exportModelopt(i4, STORIES_HF, join(dir, 'i4'), { preset: 'int4_awq', kvCache: null });
    const o4 = SafetensorsFile.open(join(dir, 'i4', 'model.safetensors'));
    const g = w('model.layers.2.mlp.gate_proj.weight');
    const [rows, cols] = g.shape as [number, number];
    const { q, scales } = int4Reference(g.data as Float32Array, rows, cols, 32);
    assert.deepEqual(o4.read('model.layers.2.mlp.gate_proj.weight').data, packInt4Rows(q, rows, cols));
    assert.deepEqual(o4.read('model.layers.2.mlp.gate_proj.weight_scale').data, scales);
    o4.close();
    // W4A8 (RTN, g32): W4A16's codes and group scales, weight_scale_2 = max |W| over gate/up / 448, input_scale = amax/448
    const w8 = quantized({ preset: 'w4a8_awq', group: 32, algorithm: 'max' }, split.calib);
    exportModelopt(w8, STORIES_HF, join(dir, 'w8'), { preset: 'w4a8_awq', kvCache: null });
    const o8 = SafetensorsFile.open(join(dir, 'w8', 'model.safetensors'));
    const m = 'model.layers.2.mlp';
    const amax2 = Math.max(...['gate_proj', 'up_proj'].map((x) => Math.max(...Array.from(w(`${m}.${x}.weight`).data as Float32Array, Math.abs))));
    const ref8 = w4a8Reference(g.data as Float32Array, rows, cols, 32, amax2);
    assert.deepEqual(o8.read(`${m}.gate_proj.weight`).data, ref8.codes);
    assert.deepEqual(o8.read(`${m}.gate_proj.weight_scale`).data, ref8.scales);
    assert.equal((o8.read(`${m}.gate_proj.weight_scale_2`).data as Float32Array)[0], ref8.s2);
    assert.equal((o8.read(`${m}.up_proj.weight_scale_2`).data as Float32Array)[0], ref8.s2);
    assert.equal((o8.read(`${m}.gate_proj.input_scale`).data as Float32Array)[0], Math.fround(w8.amaxValues()[`${m}.gate_proj.input_quantizer`]! / 448));
    assert.equal(o8.has(`${m}.down_proj.weight_scale`), false, 'down_proj (in 172) does not fit groups of 32');
    const hq = JSON.parse(readFileSync(join(dir, 'w8', 'hf_quant_config.json'), 'utf8')) as { quantization: Record<string, unknown> };
    assert.deepEqual(hq.quantization, { quant_algo: 'W4A8_AWQ', kv_cache_quant_algo: null, group_size: 32, has_zero_point: false, pre_quant_scale: true, exclude_modules: hq.quantization.exclude_modules });
    o8.close();
    assert.equal(e2m1ToF32(0b1111), -6); // the sign is bit 3 (the reference above relies on it)
  } finally {
    src.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exported MXFP4 bytes and E8M0 scales re-derived from the source weights (independent implementation)', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const src = SafetensorsFile.open(join(STORIES_HF, 'model.safetensors'));
  const dir = tmp();
  try {
    exportModelopt(quantized({ preset: 'mxfp4', algorithm: 'none' }, split.calib), STORIES_HF, join(dir, 'mx'), { preset: 'mxfp4', kvCache: null });
    const out = SafetensorsFile.open(join(dir, 'mx', 'model.safetensors'));
    for (const name of ['model.layers.0.self_attn.q_proj', 'model.layers.3.mlp.gate_proj']) {
      const w = src.read(`${name}.weight`);
      const ref = mxfp4Reference(w.data as Float32Array, w.shape[0]!, w.shape[1]!);
      assert.deepEqual(out.read(`${name}.weight`).data, ref.codes, name);
      assert.deepEqual(out.read(`${name}.weight_scale`).data, ref.scales, name);
      assert.equal(out.has(`${name}.input_scale`), false, 'MXFP4 activations are dynamic: no input_scale');
    }
    const cfg = JSON.parse(readFileSync(join(dir, 'mx', 'hf_quant_config.json'), 'utf8')) as { quantization: Record<string, unknown> };
    assert.equal(cfg.quantization.quant_algo, 'MXFP4');
    assert.equal(cfg.quantization.group_size, 32);
    out.close();
  } finally {
    src.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('broken modelopt checkpoints are refused naming the tensor; --out is never the source or an unasked overwrite', { skip: DATA_SKIP }, () => {
  const split = windows(2, 0);
  const dir = tmp();
  try {
    const good = join(dir, 'good');
    exportModelopt(quantized({ preset: 'nvfp4' }, split.calib), STORIES_HF, good, { preset: 'nvfp4', kvCache: null });
    const make = (name: string, edit: (t: Map<string, RawTensor>) => void, hf?: (c: { quantization: Record<string, unknown> }) => void): string =>
      brokenCopy(good, dir, name, edit, hf && { file: 'hf_quant_config.json', edit: hf });
    const name = 'model.layers.0.self_attn.o_proj';
    assert.throws(() => loadModelopt(make('missing', (t) => t.delete(`${name}.weight_scale_2`))), new RegExp(`${name}.weight_scale_2 is missing`));
    assert.throws(() => loadModelopt(make('nan', (t) => t.set(`${name}.input_scale`, { dtype: 'float32', shape: [], data: Float32Array.of(NaN) }))), new RegExp(`${name}.input_scale holds NaN`));
    assert.throws(() => loadModelopt(make('disagree', () => undefined, (c) => (c.quantization.quant_algo = 'FP8'))), /weight is uint8 \[.*\], FP8 needs float8_e4m3fn/);
    assert.throws(() => loadModelopt(make('unknown', () => undefined, (c) => (c.quantization.quant_algo = 'NVFP4_SVD'))), /quant_algo "NVFP4_SVD" is not one mopt loads/);
    const trunc = make('truncated', () => undefined);
    truncateSync(join(trunc, 'model.safetensors'), 4096);
    assert.throws(() => loadModelopt(trunc), /model\.safetensors: .*truncated/);
    const q = quantized({ preset: 'nvfp4' }, split.calib);
    assert.throws(() => exportModelopt(q, STORIES_HF, STORIES_HF, { preset: 'nvfp4', kvCache: null }), /never modified/);
    assert.throws(() => exportModelopt(q, STORIES_HF, good, { preset: 'nvfp4', kvCache: null }), /pass --overwrite/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
