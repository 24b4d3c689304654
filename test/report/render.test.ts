// mopt report: every kind of run directory becomes sections of one HTML page with well-formed SVG plots whose
// marks follow the data (a point per logged step, a bar per preset, a cell per layer and Linear).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReport, writeReport } from '../../src/report/render.js';

function balanced(svg: string): void {
  for (const tag of ['svg', 'text']) {
    const open = (svg.match(new RegExp(`<${tag}[ >]`, 'g')) ?? []).length;
    const close = (svg.match(new RegExp(`</${tag}>`, 'g')) ?? []).length;
    assert.equal(open, close, `<${tag}> tags do not balance`);
  }
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"') && svg.endsWith('</svg>'));
  assert.ok(!/NaN|undefined|Infinity/.test(svg), 'a coordinate is not a number');
}

test('mopt report renders training, format comparison and per-layer quantization runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-report-'));
  try {
    writeFileSync(join(dir, 'train-log.json'), JSON.stringify({
      summary: { steps: 6, valLoss: 3.2 },
      train: [1, 2, 3, 4, 5, 6].map((s) => ({ step: s, loss: 6 - s * 0.4 })),
      val: [{ step: 3, loss: 4.9 }, { step: 6, loss: 3.2 }],
    }));
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({
      pplBefore: 4.5, sourceBytes: 1e6,
      rows: [
        { preset: 'fp8', algorithm: 'max', ppl: 4.49, pplChangePercent: -0.2, kl: 0.013, bitsPerWeight: 11, bytes: 360000, unquantized: 0 },
        { preset: 'nvfp4', algorithm: 'max', ppl: 5.3, pplChangePercent: 17.8, kl: 0.158, bitsPerWeight: 13.8, bytes: 450000, unquantized: 5 },
      ],
    }));
    mkdirSync(join(dir, 'int4'));
    const weights = [0, 1].flatMap((l) => ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj'].map((m, i) => ({
      name: `model.layers.${l}.${m.endsWith('proj') && i < 4 ? 'self_attn' : 'mlp'}.${m}.weight_quantizer`, sqnrDb: 20 + l + i, bitsPerWeight: 4.25, elements: 4096,
    })));
    writeFileSync(join(dir, 'int4', 'report.json'), JSON.stringify({
      recipe: { preset: 'int4_awq', algorithm: 'awq_lite', calibrator: 'max', kvCache: null }, calibration: { samples: 2, seqLen: 64, tokens: 128 },
      evaluation: { windows: 1, tokens: 63, before: { ppl: 4.5, nll: 1.5, tokens: 63 }, after: { ppl: 4.9, nll: 1.59, tokens: 63 }, kl: { mean: 0.1, tokens: 64 } },
      size: { sourceBytes: 1e6, quantizedBytes: 4.6e5, linearBitsPerWeight: 14.1 }, quantizers: [], weights,
    }));
    const r = renderReport(dir);
    const name = dir.split('/').pop()!;
    assert.deepEqual(r.sections, [`train:${name}`, `formats:${name}`, 'quantize:int4']);
    for (const svg of r.svgs.values()) balanced(svg);
    const loss = r.svgs.get(`${name}-loss.svg`)!;
    assert.equal((loss.match(/<circle/g) ?? []).length, 8, 'a point per logged train and validation step');
    assert.equal((r.svgs.get(`${name}-kl.svg`)!.match(/<rect/g) ?? []).length, 2, 'a bar per preset');
    const heat = r.svgs.get('int4-sqnr.svg')!;
    assert.equal((heat.match(/<rect/g) ?? []).length, 2 * 7, 'a cell per layer and Linear');
    assert.equal((heat.match(/fill="#eee"/g) ?? []).length, 2, 'down_proj, not quantized, is gray');
    const out = writeReport(dir);
    assert.ok(readFileSync(out.path, 'utf8').includes('<h2>Quantization: int4</h2>'));
    assert.throws(() => renderReport(join(dir, 'int4', 'nothing-here')), /is not a directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
