// Recipe layer (src/quant/recipes): glob rules over quantizer names, last match wins, presets as data.
// Expectations are written from docs/reference/modelopt.md §1.1 (preset table, default_disabled_quantizers,
// KV presets on `*[kv]_bmm_quantizer`) and formats.md (INT4 groups 32/64/128, NVFP4 16, MX 32).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/util/errors.js';
import {
  DISABLED, PRESETS, PRESET_NAMES, applyGroupSize, compileGlob, parseRecipe, presetRecipe, resolveQuantizer,
  type QuantizerSettings, type Resolved,
} from '../../src/quant/recipes/index.js';

// Linear names of a 2-layer Llama (src/models/decoder.ts), untied lm_head.
const LAYER_LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const LINEARS = [0, 1].flatMap((l) => LAYER_LINEARS.map((n) => `model.layers.${l}.${n}`));
const ALL_LINEARS = [...LINEARS, 'lm_head'];

function oneLineUserError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `not one line: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

test('glob: * crosses dots, ? is one char, [kv] is a class, everything else literal', () => {
  assert.ok(compileGlob('*lm_head*').test('lm_head.weight_quantizer'));
  assert.ok(compileGlob('*[kv]_bmm_quantizer').test('model.layers.0.self_attn.k_bmm_quantizer'));
  assert.ok(!compileGlob('*[kv]_bmm_quantizer').test('model.layers.0.self_attn.q_bmm_quantizer'));
  assert.ok(compileGlob('model.layers.?.mlp*').test('model.layers.1.mlp.up_proj.input_quantizer'));
  assert.ok(!compileGlob('model.layers.?.mlp*').test('model.layers.10.mlp.up_proj.input_quantizer'));
  assert.ok(!compileGlob('a.b').test('axb'), '. is literal');
  assert.ok(!compileGlob('*mlp.gate.*').test('model.layers.0.mlp.gate_proj.weight_quantizer'));
});

test('last matching rule wins, in file order', () => {
  const yaml = [
    'quant_cfg:',
    '  - ["*", {enable: false}]',
    '  - ["*weight_quantizer", {format: int4, block_size: 128}]',
    '  - ["*layers.1.*weight_quantizer", {format: fp8}]',
    '  - {quantizer_name: "*down_proj*", enable: false}',
  ].join('\n');
  const r = parseRecipe(yaml, 'r.yaml');
  assert.equal(r.algorithm, 'max');
  assert.deepEqual(resolveQuantizer(r, 'model.layers.0.mlp.up_proj.weight_quantizer'), { format: 'int4', blockSize: 128 });
  assert.deepEqual(resolveQuantizer(r, 'model.layers.1.mlp.up_proj.weight_quantizer'), { format: 'fp8' });
  assert.equal(resolveQuantizer(r, 'model.layers.1.mlp.down_proj.weight_quantizer'), DISABLED);
  assert.equal(resolveQuantizer(r, 'model.layers.0.mlp.up_proj.input_quantizer'), DISABLED);
  // Reversed order: the catch-all now comes last and disables everything.
  const rev = parseRecipe(JSON.stringify({ quant_cfg: [['*weight_quantizer', { format: 'fp8' }], ['*', { enable: false }]] }), 'rev.json');
  assert.equal(resolveQuantizer(rev, 'model.layers.0.mlp.up_proj.weight_quantizer'), DISABLED);
  // No rule matches → disabled.
  assert.equal(resolveQuantizer(parseRecipe('{"quant_cfg": []}', 'e.json'), 'x.weight_quantizer'), DISABLED);
});

test('YAML and JSON of the same recipe parse to the same recipe', () => {
  const data = {
    algorithm: 'awq_lite',
    quant_cfg: [
      ['*', { enable: false }],
      ['*weight_quantizer', { format: 'int4', block_size: 128, then: { format: 'fp8' } }],
      { quantizer_name: '*input_quantizer', cfg: { format: 'fp8' } },
      { quantizer_name: '*lm_head*', enable: false },
    ],
  };
  const yaml = [
    'algorithm: awq_lite',
    'quant_cfg:',
    '  - ["*", {enable: false}]',
    '  - - "*weight_quantizer"',
    '    - format: int4',
    '      block_size: 128',
    '      then: {format: fp8}',
    '  - quantizer_name: "*input_quantizer"',
    '    cfg: {format: fp8}',
    '  - {quantizer_name: "*lm_head*", enable: false}',
  ].join('\n');
  const a = parseRecipe(JSON.stringify(data, null, 2), 'w4a8.json');
  const b = parseRecipe(yaml, 'w4a8.yaml');
  const c = parseRecipe(JSON.stringify(data), 'noext'); // JSON detected by content
  assert.deepEqual(b, a);
  assert.deepEqual(c, a);
});

test('bad input: one-line UserError naming the file and the key path, listing allowed values', () => {
  const j = (o: unknown): string => JSON.stringify(o);
  const cases: Array<[string, string, string[]]> = [
    [j({ algorithm: 'awq', quant_cfg: [] }), 'a.json', ['a.json', 'algorithm', 'awq_lite', 'smoothquant']],
    [j({ quant_cfg: [], extra: 1 }), 'a.json', ['a.json', 'extra', 'unknown key', 'quant_cfg']],
    [j({}), 'a.json', ['a.json', 'quant_cfg', 'missing']],
    [j({ quant_cfg: [['*w*', { format: 'fp9' }]] }), 'b.json', ['b.json', 'quant_cfg[0][1].format', 'fp8', 'mxfp4']],
    [j({ quant_cfg: [['*w*', { format: 'int4', blocksize: 128 }]] }), 'b.json', ['quant_cfg[0][1].blocksize', 'unknown key', 'block_size']],
    [j({ quant_cfg: [['*w*', { format: 'int4', block_size: 100 }]] }), 'b.json', ['quant_cfg[0][1].block_size', '32, 64, 128']],
    [j({ quant_cfg: [['*w*', { format: 'mxfp4', block_size: 16 }]] }), 'b.json', ['quant_cfg[0][1].block_size', 'allowed: 32']],
    [j({ quant_cfg: [['*w*', { format: 'fp8', axis: 'x' }]] }), 'b.json', ['quant_cfg[0][1].axis']],
    [j({ quant_cfg: [['*w*', { format: 'fp8', enable: 'no' }]] }), 'b.json', ['quant_cfg[0][1].enable', 'true, false']],
    [j({ quant_cfg: [['*w*', { format: 'int4', block_size: 128, then: { format: 'fp8', x: 1 } }]] }), 'b.json', ['quant_cfg[0][1].then.x']],
    [j({ quant_cfg: [['*w*']] }), 'b.json', ['quant_cfg[0]', '[glob, settings]']],
    [j({ quant_cfg: [[3, { format: 'fp8' }]] }), 'b.json', ['quant_cfg[0][0]', 'glob']],
    [j({ quant_cfg: [{ quantizer_name: '*', cfgg: {} }] }), 'c.json', ['quant_cfg[0].cfgg', 'quantizer_name, cfg, enable']],
    [j({ quant_cfg: [{ quantizer_name: '*' }] }), 'c.json', ['quant_cfg[0].cfg', 'missing']],
    ['quant_cfg:\n  - ["*", {format: int3}]\n', 'd.yaml', ['d.yaml', 'quant_cfg[0][1].format', 'int4']],
    ['quant_cfg: [\n  - x\n', 'e.yaml', ['e.yaml', 'not valid YAML']],
    ['{"quant_cfg": [', 'f.json', ['f.json', 'not valid JSON']],
  ];
  for (const [text, src, parts] of cases) oneLineUserError(() => parseRecipe(text, src), ...parts);
});

test('every preset: default exclusions (lm_head, embeddings, routers/MoE gates) are disabled', () => {
  const excluded = [
    'lm_head', 'model.embed_tokens', 'model.layers.0.mlp.gate', 'model.layers.1.mlp.router',
    'model.layers.0.block_sparse_moe.gate', 'model.visual.blocks.0.attn.qkv', 'model.vision_tower.x',
  ];
  for (const name of PRESET_NAMES) {
    const r = PRESETS[name];
    for (const m of excluded) {
      for (const q of ['weight_quantizer', 'input_quantizer', 'output_quantizer']) {
        assert.equal(resolveQuantizer(r, `${m}.${q}`), DISABLED, `${name}: ${m}.${q}`);
      }
    }
    // The dense MLP gate_proj is not a MoE gate and stays quantized.
    assert.notEqual(resolveQuantizer(r, 'model.layers.0.mlp.gate_proj.weight_quantizer'), DISABLED, name);
  }
});

test('KV-cache presets resolve on k/v bmm quantizers only', () => {
  for (const name of PRESET_NAMES) {
    assert.equal(resolveQuantizer(PRESETS[name], 'model.layers.0.self_attn.k_bmm_quantizer'), DISABLED, `${name} without kv`);
    for (const [kv, want] of [['fp8', { format: 'fp8' }], ['nvfp4', { format: 'nvfp4', blockSize: 16 }]] as const) {
      const r = presetRecipe(name, kv);
      for (const l of [0, 1]) {
        assert.deepEqual(resolveQuantizer(r, `model.layers.${l}.self_attn.k_bmm_quantizer`), want, `${name}+${kv}`);
        assert.deepEqual(resolveQuantizer(r, `model.layers.${l}.self_attn.v_bmm_quantizer`), want, `${name}+${kv}`);
        assert.equal(resolveQuantizer(r, `model.layers.${l}.self_attn.q_bmm_quantizer`), DISABLED);
      }
      // Adding KV rules leaves the Linear quantizers and the exclusions as they were.
      for (const lin of ALL_LINEARS) {
        for (const q of ['weight_quantizer', 'input_quantizer']) {
          assert.deepEqual(resolveQuantizer(r, `${lin}.${q}`), resolveQuantizer(PRESETS[name], `${lin}.${q}`));
        }
      }
    }
  }
});

test('presetRecipe: unknown names list the known presets', () => {
  oneLineUserError(() => presetRecipe('fp4'), 'fp4', 'fp8', 'int4_awq', 'nvfp4', 'mxfp4');
  oneLineUserError(() => presetRecipe('fp8', 'int8'), 'int8', 'fp8', 'nvfp4');
});

test('table: every Linear of a 2-layer Llama under each preset (modelopt.md §1.1)', () => {
  const fp8: QuantizerSettings = { format: 'fp8' };
  const nv: QuantizerSettings = { format: 'nvfp4', blockSize: 16, dynamic: true };
  const int4: QuantizerSettings = { format: 'int4', blockSize: 128 };
  const mx = (f: 'mxfp8' | 'mxfp4'): QuantizerSettings => ({ format: f, blockSize: 32, dynamic: true });
  const table: Record<string, { algorithm: string; weight: Resolved; input: Resolved }> = {
    fp8: { algorithm: 'max', weight: fp8, input: fp8 },
    int8_sq: { algorithm: 'smoothquant', weight: { format: 'int8', axis: 0 }, input: { format: 'int8' } },
    int4_awq: { algorithm: 'awq_lite', weight: int4, input: DISABLED },
    w4a8_awq: { algorithm: 'awq_lite', weight: { ...int4, then: fp8 }, input: fp8 },
    nvfp4: { algorithm: 'max', weight: nv, input: nv },
    nvfp4_awq: { algorithm: 'awq_lite', weight: nv, input: nv },
    w4a16_nvfp4: { algorithm: 'max', weight: nv, input: DISABLED },
    mxfp8: { algorithm: 'none', weight: mx('mxfp8'), input: mx('mxfp8') },
    mxfp4: { algorithm: 'none', weight: mx('mxfp4'), input: mx('mxfp4') },
  };
  assert.deepEqual([...PRESET_NAMES].sort(), Object.keys(table).sort());
  for (const [name, want] of Object.entries(table)) {
    const r = presetRecipe(name);
    assert.equal(r.algorithm, want.algorithm, name);
    for (const lin of LINEARS) {
      assert.deepEqual(resolveQuantizer(r, `${lin}.weight_quantizer`), want.weight, `${name} ${lin}.weight_quantizer`);
      assert.deepEqual(resolveQuantizer(r, `${lin}.input_quantizer`), want.input, `${name} ${lin}.input_quantizer`);
      assert.equal(resolveQuantizer(r, `${lin}.output_quantizer`), DISABLED, `${name} ${lin}.output_quantizer`);
    }
    for (const q of ['weight_quantizer', 'input_quantizer', 'output_quantizer']) {
      assert.equal(resolveQuantizer(r, `lm_head.${q}`), DISABLED, `${name} lm_head.${q}`);
    }
  }
});

test('applyGroupSize: INT4 takes 32/64/128, other formats are refused', () => {
  const w = 'model.layers.0.mlp.up_proj.weight_quantizer';
  for (const n of [32, 64, 128]) {
    assert.deepEqual(resolveQuantizer(applyGroupSize(PRESETS.int4_awq, n), w), { format: 'int4', blockSize: n });
    assert.deepEqual(resolveQuantizer(applyGroupSize(PRESETS.w4a8_awq, n), w), { format: 'int4', blockSize: n, then: { format: 'fp8' } });
  }
  assert.deepEqual(resolveQuantizer(PRESETS.int4_awq, w), { format: 'int4', blockSize: 128 }, 'preset not mutated');
  oneLineUserError(() => applyGroupSize(PRESETS.int4_awq, 100), '--group-size 100', '32, 64, 128');
  oneLineUserError(() => applyGroupSize(PRESETS.nvfp4, 64), '--group-size', 'nvfp4', '16');
  oneLineUserError(() => applyGroupSize(PRESETS.mxfp4, 32), '--group-size', 'mxfp4');
  oneLineUserError(() => applyGroupSize(PRESETS.fp8, 128), '--group-size', 'fp8');
});
