// PNG charts: the same scene as the SVG, painted at 2x; marks land where the scene puts them, the images are
// not blank, `mopt report` writes them beside the SVGs (or not, with png: false), and regenerating gives the
// same bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { barChartScene, COLORS, heatmapScene, lineChartScene } from '../../src/report/chart.js';
import { writeReport } from '../../src/report/render.js';
import { parseColor } from '../../src/report/raster.js';
import type { RectMark, TextMark } from '../../src/report/scene.js';
import { sceneToPng } from '../../src/report/scene-png.js';
import { colorCounts, decodePng, pixelHex } from './png-decode.js';

const loss = lineChartScene('loss', 'step', [
  { name: 'train', points: [1, 2, 3, 4, 5, 6].map((s) => ({ x: s, y: 6 - 0.4 * s })) },
  { name: 'validation', points: [{ x: 3, y: 4.9 }, { x: 6, y: 3.2 }] },
]);
const bars = barChartScene('KL', [{ label: 'fp8', value: 0.013 }, { label: 'nvfp4', value: 0.158, note: '(5 weights unquantized)' }, { label: 'int8', value: -0.2 }]);
const heat = heatmapScene('SQNR', ['layer 0', 'layer 1'], ['q_proj', 'down_proj'], (r, c) => (c === 1 ? null : r === 1 ? Infinity : 21.5));

const hex = (css: string): string => `#${parseColor(css).map((v) => v.toString(16).padStart(2, '0')).join('')}`;
const nonWhite = (counts: Map<string, number>, total: number): number => 1 - (counts.get('#ffffff') ?? 0) / total;

test('a line chart PNG has twice the scene size, both series and axis text', () => {
  const img = decodePng(sceneToPng(loss));
  assert.deepEqual([img.width, img.height, img.colorType], [2 * loss.width, 2 * loss.height, 2]);
  const counts = colorCounts(img);
  assert.ok((counts.get(COLORS[0]) ?? 0) > 500, 'the train line and its markers');
  assert.ok((counts.get(COLORS[1]) ?? 0) > 300, 'the validation line and its markers');
  assert.ok((counts.get('#000000') ?? 0) > 500, 'titles and tick labels');
  assert.ok((counts.get('#dddddd') ?? 0) > 5 * 1000, 'five grid lines');
  const f = nonWhite(counts, img.width * img.height);
  assert.ok(f > 0.01 && f < 0.5, `non-white fraction ${f}`);
  for (const m of loss.marks) if (m.kind === 'circle') assert.equal(pixelHex(img, Math.floor(2 * m.cx), Math.floor(2 * m.cy)), m.fill, 'a marker at each point');
});

test('bars and heatmap cells are painted where the scene puts them, in their colors', () => {
  for (const scene of [bars, heat]) {
    const img = decodePng(sceneToPng(scene));
    assert.deepEqual([img.width, img.height], [2 * scene.width, 2 * scene.height]);
    const rects = scene.marks.filter((m): m is RectMark => m.kind === 'rect');
    assert.equal(rects.length, scene === bars ? 3 : 4);
    for (const r of rects) {
      // a pixel just inside each corner: text may cover the middle of a cell
      for (const [x, y] of [[r.x, r.y], [r.x + r.w - 0.5, r.y + r.h - 0.5]] as const) {
        assert.equal(pixelHex(img, Math.floor(2 * x), Math.floor(2 * y)), hex(r.fill), `rect at ${r.x},${r.y}`);
      }
    }
  }
  assert.ok(bars.marks.some((m) => m.kind === 'rect' && m.fill === '#95a5a6'), 'a negative value is gray');
  const note = bars.marks.find((m): m is TextMark => m.kind === 'text' && m.text.includes('unquantized'))!;
  assert.ok(note.x + 6 * note.text.length <= bars.width, 'the longest value label fits in the chart');
});

test('mopt report writes a PNG beside each SVG, byte-identical when regenerated; png: false writes none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopt-report-png-'));
  try {
    writeFileSync(join(dir, 'train-log.json'), JSON.stringify({ train: [1, 2, 3].map((s) => ({ step: s, loss: 5 - s })), val: [{ step: 3, loss: 2.5 }] }));
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({ pplBefore: 4.5, rows: [{ preset: 'fp8', algorithm: 'max', ppl: 4.49, pplChangePercent: -0.2, kl: 0.013, bytes: 360000, unquantized: 0 }] }));
    const first = writeReport(dir);
    const pngs = first.plots.filter((f) => f.endsWith('.png')).sort();
    const name = dir.split('/').pop()!;
    assert.deepEqual(pngs, ['kl', 'loss', 'ppl', 'size'].map((k) => `${name}-${k}.png`));
    assert.equal(first.plots.length, 8);
    const bytes = pngs.map((f) => readFileSync(join(dir, f)));
    for (const b of bytes) {
      const img = decodePng(b);
      assert.ok(colorCounts(img).size >= 3, 'not blank');
    }
    writeReport(dir);
    pngs.forEach((f, i) => assert.ok(readFileSync(join(dir, f)).equals(bytes[i]!), `${f} changed on regeneration`));
    for (const f of pngs) rmSync(join(dir, f));
    const svgOnly = writeReport(dir, undefined, { png: false });
    assert.ok(svgOnly.plots.every((f) => f.endsWith('.svg')));
    assert.ok(!readdirSync(dir).some((f) => f.endsWith('.png')) && existsSync(join(dir, `${name}-loss.svg`)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
