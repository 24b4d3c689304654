// report.html for `mopt quantize`: the summary numbers, and one bar per quantized weight with its SQNR (dB),
// grouped by layer, so the layers that lose the most stand out. Self-contained (inline SVG and CSS).

import type { QuantReport } from './report.js';
import { esc } from '../report/svg.js';
const num = (x: number | undefined | null, d = 4): string => (x === undefined || x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** Horizontal bars, one per weight quantizer, length proportional to its SQNR. */
function sqnrChart(r: QuantReport): string {
  const rows = r.weights.map((w) => ({ name: w.name.replace(/\.weight_quantizer$/, ''), db: w.sqnrDb }));
  if (rows.length === 0) return '<p>No weight was quantized.</p>';
  const finite = rows.map((x) => x.db).filter(Number.isFinite);
  const max = Math.max(1, ...finite);
  const bar = 14;
  const labelW = 330;
  const plotW = 420;
  const h = rows.length * bar + 24;
  const lowest = [...finite].sort((a, b) => a - b)[Math.min(4, finite.length - 1)] ?? -Infinity;
  const items = rows.map((x, i) => {
    const y = 20 + i * bar;
    const w = Number.isFinite(x.db) ? Math.max(1, (plotW * Math.max(0, x.db)) / max) : plotW;
    const fill = x.db <= lowest ? '#c0392b' : '#2e86c1';
    return `<text x="${labelW - 6}" y="${y + 10}" text-anchor="end">${esc(x.name)}</text>` +
      `<rect x="${labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${bar - 4}" fill="${fill}"/>` +
      `<text x="${labelW + w + 4}" y="${y + 10}">${Number.isFinite(x.db) ? x.db.toFixed(1) : 'exact'}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 60}" height="${h}" font-family="sans-serif" font-size="10">` +
    `<text x="${labelW}" y="12" font-weight="bold">weight SQNR (dB, higher is better; the five lowest in red)</text>${items.join('')}</svg>`;
}

export function renderHtml(r: QuantReport): string {
  const e = r.evaluation;
  const left = r.quantizers.filter((q) => q.skipped !== null);
  const summary: [string, string][] = [
    ['recipe', `${r.recipe.preset ?? 'custom recipe'} — algorithm ${r.recipe.algorithm}, calibrator ${r.recipe.calibrator}${r.recipe.kvCache ? `, KV cache ${r.recipe.kvCache}` : ''}`],
    ['calibration', `${r.calibration.samples} x ${r.calibration.seqLen} tokens`],
    ['perplexity (held-out)', e.before && e.after ? `${num(e.before.ppl)} → ${num(e.after.ppl)} over ${e.tokens} predictions` : 'not measured (no held-out text)'],
    ['mean KL(original ‖ quantized)', e.kl ? `${num(e.kl.mean, 6)} nats/token` : '-'],
    ['bits per Linear weight', num(r.size.linearBitsPerWeight, 3)],
    ['parameters', `${(r.size.sourceBytes / 1e6).toFixed(3)} MB → ${(r.size.quantizedBytes / 1e6).toFixed(3)} MB`],
    ['quantizers', `${r.quantizers.length - left.length} enabled, ${left.length} left unquantized`],
  ];
  return `<!doctype html><html><head><meta charset="utf-8"><title>mopt quantization report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:70em}td,th{padding:2px 10px;text-align:left}th{background:#eee}</style></head><body>
<h1>mopt quantization report</h1>
<table>${summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
${left.length ? `<h2>Left unquantized</h2><ul>${left.map((q) => `<li>${esc(q.name)}: ${esc(q.skipped!)}</li>`).join('')}</ul>` : ''}
<h2>Weights</h2>${sqnrChart(r)}
</body></html>
`;
}
