// `mopt report DIR`: one self-contained HTML page (plus the plots as .svg and .png files beside it) for whatever
// runs DIR holds: train-log.json (mopt train: loss curves), summary.json (mopt quantize --format all: perplexity
// change, KL and size per preset), report.json (mopt quantize: per-layer weight SQNR heatmap), also one
// directory level down (the per-preset directories of --format all, the model/ of a training run).

import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { atomicWriteFile } from '../io/json-file.js';
import { readJsonFile } from '../io/json-file.js';
import type { QuantReport } from '../quant/report.js';
import { UserError } from '../util/errors.js';
import { barChartScene, heatmapScene, lineChartScene } from './chart.js';
import type { Scene } from './scene.js';
import { sceneToPng } from './scene-png.js';
import { esc, toSvg } from './svg.js';

interface TrainLog {
  summary?: Record<string, unknown>;
  train: { step: number; loss: number }[];
  val: { step: number; loss: number }[];
}
interface Summary {
  pplBefore: number | null;
  rows: { preset: string; algorithm: string; ppl: number | null; pplChangePercent: number | null; kl: number | null; bytes: number; unquantized: number }[];
}

export interface RenderedReport {
  html: string;
  /** plots as drawn, by file name without extension ('NAME-loss') */
  plots: Map<string, Scene>;
  /** plots as SVG, by file name ('NAME-loss.svg') */
  svgs: Map<string, string>;
  sections: string[];
}

/** Keeps a plot under its file stem and returns its SVG for the page. */
type AddPlot = (stem: string, scene: Scene) => string;

const LINEARS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function trainSection(name: string, log: TrainLog, plot: AddPlot): string {
  const svg = plot(`${name}-loss`, lineChartScene(`loss (${name})`, 'optimizer step', [
    { name: 'train', points: log.train.map((p) => ({ x: p.step, y: p.loss })) },
    { name: 'validation', points: log.val.map((p) => ({ x: p.step, y: p.loss })) },
  ]));
  const s = log.summary ?? {};
  const facts = Object.entries(s).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v))}</td></tr>`).join('');
  return `<h2>Training: ${esc(name)}</h2><table>${facts}</table>${svg}`;
}

function summarySection(name: string, s: Summary, plot: AddPlot): string {
  const ppl = plot(`${name}-ppl`, barChartScene(`perplexity change vs the original (${s.pplBefore === null ? '?' : s.pplBefore.toFixed(4)}), %`, s.rows.map((r) => ({ label: r.preset, value: r.pplChangePercent, note: r.algorithm }))));
  const kl = plot(`${name}-kl`, barChartScene('mean KL(original ‖ quantized), nats/token', s.rows.map((r) => ({ label: r.preset, value: r.kl }))));
  const size = plot(`${name}-size`, barChartScene('parameters, MB', s.rows.map((r) => ({ label: r.preset, value: r.bytes / 1e6, note: r.unquantized ? `(${r.unquantized} weights unquantized)` : '' }))));
  return `<h2>Formats compared: ${esc(name)}</h2>${ppl}${kl}${size}`;
}

function quantSection(name: string, r: QuantReport, plot: AddPlot): string {
  const byName = new Map(r.weights.map((w) => [w.name.replace(/\.weight_quantizer$/, ''), w.sqnrDb]));
  const layers = new Set<number>();
  for (const n of byName.keys()) {
    const m = /layers\.(\d+)\./.exec(n);
    if (m) layers.add(Number(m[1]));
  }
  const rows = [...layers].sort((a, b) => a - b);
  const find = (layer: number, lin: string): number | null => {
    for (const [n, db] of byName) if (n.includes(`layers.${layer}.`) && n.endsWith(lin)) return db;
    return null;
  };
  const svg = plot(`${name}-sqnr`, heatmapScene(`weight SQNR, dB (${r.recipe.preset ?? 'custom'}, ${r.recipe.algorithm}); gray: not quantized`, rows.map((l) => `layer ${l}`), LINEARS, (i, c) => find(rows[i]!, LINEARS[c]!)));
  const e = r.evaluation;
  const line = e.before && e.after ? `perplexity ${e.before.ppl.toFixed(4)} → ${e.after.ppl.toFixed(4)}, KL ${e.kl?.mean.toFixed(5) ?? '-'}, ${r.size.linearBitsPerWeight.toFixed(2)} bits per Linear weight` : '';
  return `<h2>Quantization: ${esc(name)}</h2><p>${esc(line)}</p>${svg}`;
}

/** Renders every run found in dir (and its immediate subdirectories). */
export function renderReport(dir: string): RenderedReport {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir} is not a directory`);
  const plots = new Map<string, Scene>();
  const svgs = new Map<string, string>();
  const plot: AddPlot = (stem, scene) => {
    const svg = toSvg(scene);
    plots.set(stem, scene);
    svgs.set(`${stem}.svg`, svg);
    return svg;
  };
  const parts: string[] = [];
  const sections: string[] = [];
  const visit = (d: string, name: string): void => {
    if (existsSync(join(d, 'train-log.json'))) {
      parts.push(trainSection(name, readJsonFile(join(d, 'train-log.json'), 'training log') as TrainLog, plot));
      sections.push(`train:${name}`);
    }
    if (existsSync(join(d, 'summary.json'))) {
      parts.push(summarySection(name, readJsonFile(join(d, 'summary.json'), 'format comparison') as Summary, plot));
      sections.push(`formats:${name}`);
    }
    if (existsSync(join(d, 'report.json'))) {
      parts.push(quantSection(name, readJsonFile(join(d, 'report.json'), 'quantization report') as QuantReport, plot));
      sections.push(`quantize:${name}`);
    }
  };
  visit(dir, basename(dir));
  for (const sub of readdirSync(dir).sort()) {
    const d = join(dir, sub);
    if (statSync(d).isDirectory()) visit(d, sub);
  }
  if (parts.length === 0) throw new UserError(`${dir} holds no run to report (train-log.json, summary.json or report.json, here or one level down)`);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>mopt report: ${esc(basename(dir))}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:72em}td,th{padding:2px 10px;text-align:left}th{background:#eee}svg{display:block;margin:1em 0}</style></head><body>
<h1>mopt report: ${esc(basename(dir))}</h1>
${parts.join('\n')}
</body></html>
`;
  return { html, plots, svgs, sections };
}

/**
 * Writes the HTML page (default DIR/report-all.html) and every plot into dir as .svg and, unless png is false,
 * as .png (for places that show images but not SVG: chat, slides, issue trackers). The page keeps the SVG
 * inline: vector, selectable text and one self-contained file, where embedded PNGs would add base64 weight.
 */
export function writeReport(dir: string, out = join(dir, 'report-all.html'), o: { png?: boolean } = {}): { path: string; sections: string[]; plots: string[] } {
  const r = renderReport(dir);
  atomicWriteFile(out, r.html);
  const files: string[] = [];
  for (const [stem, scene] of r.plots) {
    atomicWriteFile(join(dir, `${stem}.svg`), r.svgs.get(`${stem}.svg`)!);
    files.push(`${stem}.svg`);
    if (o.png === false) continue;
    atomicWriteFile(join(dir, `${stem}.png`), sceneToPng(scene));
    files.push(`${stem}.png`);
  }
  return { path: out, sections: r.sections, plots: files };
}
