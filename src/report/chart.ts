// Chart geometry for the reports: scales, ticks, layout and colors decided once, as a Scene of drawing
// primitives that svg.ts writes as SVG and scene-png.ts paints as PNG. Line charts for loss curves, one
// horizontal bar per label for per-format comparisons, a heatmap for per-layer errors.

import { text, type Mark, type Scene } from './scene.js';

export const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2));
export const COLORS = ['#2e86c1', '#c0392b', '#27ae60', '#8e44ad', '#d68910'] as const;
const GRID = '#ddd';
const MISSING = '#eee';
const NEGATIVE = '#95a5a6';
const EXACT = '#1b4f72';
/** average advance of the charts' 11px sans-serif text, and exactly that of the PNG bitmap font */
const CHAR_W = 6;

/** [min, max] of a non-empty list (a loop: spreading a long training log into Math.min overflows the stack) */
function extent(v: readonly number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of v) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

export interface Series {
  name: string;
  points: readonly { x: number; y: number }[];
}

/** Lines over a shared x axis (e.g. loss against step), with axis ticks and a legend. */
export function lineChartScene(title: string, xLabel: string, series: readonly Series[], w = 640, h = 320): Scene {
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0) return { width: w, height: 40, marks: [text(10, 24, `${title}: no data`)] };
  const [x0, x1] = extent(pts.map((p) => p.x));
  const [y0, y1] = extent(pts.map((p) => p.y));
  const L = 56, R = 16, T = 28, B = 40;
  const sx = (x: number): number => L + ((x - x0) / Math.max(1e-12, x1 - x0)) * (w - L - R);
  const sy = (y: number): number => T + (1 - (y - y0) / Math.max(1e-12, y1 - y0)) * (h - T - B);
  const marks: Mark[] = [text(L, 16, title, 'start', { bold: true })];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const yv = y0 + t * (y1 - y0);
    const xv = x0 + t * (x1 - x0);
    marks.push({ kind: 'line', x1: L, x2: w - R, y1: sy(yv), y2: sy(yv), stroke: GRID, width: 1 });
    marks.push(text(L - 4, sy(yv) + 4, fmt(yv), 'end'));
    marks.push(text(sx(xv), h - B + 16, fmt(xv), 'middle'));
  }
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const finite = s.points.filter((p) => Number.isFinite(p.y));
    marks.push({ kind: 'polyline', points: finite.map((p) => ({ x: sx(p.x), y: sy(p.y) })), stroke: c, width: 1.5 });
    // Markers only while they stay apart; a long run is read from the line alone.
    if (s.points.length <= 40) for (const p of s.points) marks.push({ kind: 'circle', cx: sx(p.x), cy: sy(p.y), r: 2.5, fill: c });
    marks.push(text(w - R - 4, T + 14 * (i + 1), s.name, 'end', { fill: c }));
  });
  marks.push(text((L + w - R) / 2, h - 6, xLabel, 'middle'));
  return { width: w, height: h, marks };
}

export interface BarRow {
  label: string;
  value: number | null;
  note?: string;
}

/** One horizontal bar per label, for one metric (values >= 0 drawn from zero; negative values drawn leftwards in gray). */
export function barChartScene(title: string, rows: readonly BarRow[], w = 640): Scene {
  const bar = 18;
  const L = 130;
  const values = rows.map((r) => `${r.value === null ? '-' : fmt(r.value)}${r.note ? ` ${r.note}` : ''}`);
  // The longest bar ends where its value text still fits (about 6px per character at 11px sans-serif).
  const plot = w - L - Math.max(90, 8 + CHAR_W * Math.max(0, ...values.map((t) => t.length)));
  const vals = rows.map((r) => r.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const max = Math.max(1e-12, ...vals.map(Math.abs));
  const marks: Mark[] = [text(L, 14, title, 'start', { bold: true })];
  rows.forEach((r, i) => {
    const y = 24 + i * bar;
    const v = r.value;
    const len = v === null || !Number.isFinite(v) ? 0 : (plot * Math.abs(v)) / max;
    marks.push(text(L - 6, y + 12, r.label, 'end'));
    marks.push({ kind: 'rect', x: L, y: y + 3, w: Math.max(1, len), h: bar - 6, fill: v !== null && v < 0 ? NEGATIVE : COLORS[0] });
    marks.push(text(L + len + 4, y + 12, values[i]!));
  });
  return { width: w, height: 28 + rows.length * bar, marks };
}

/** A grid of cells colored from red (low) to blue (high), each labeled with its value; null cells are gray. */
export function heatmapScene(title: string, rowLabels: readonly string[], colLabels: readonly string[], value: (r: number, c: number) => number | null): Scene {
  const cw = 58, ch = 20, L = 80, T = 40;
  const vals: number[] = [];
  rowLabels.forEach((_, r) => colLabels.forEach((__, c) => {
    const v = value(r, c);
    if (v !== null && Number.isFinite(v)) vals.push(v);
  }));
  const [lo, hi] = vals.length ? extent(vals) : [0, 1];
  const color = (v: number): string => {
    const t = hi > lo ? (v - lo) / (hi - lo) : 1;
    return `rgb(${Math.round(200 * (1 - t) + 40 * t)},${Math.round(60 + 70 * t)},${Math.round(50 * (1 - t) + 190 * t)})`;
  };
  const marks: Mark[] = [text(L, 14, title, 'start', { bold: true })];
  colLabels.forEach((c, i) => marks.push(text(L + i * cw + cw / 2, T - 6, c, 'middle')));
  rowLabels.forEach((rl, r) => {
    marks.push(text(L - 6, T + r * ch + 14, rl, 'end'));
    colLabels.forEach((_, c) => {
      const v = value(r, c);
      const x = L + c * cw;
      const y = T + r * ch;
      // Infinite SQNR means the weights survived quantization exactly: the darkest blue, labeled so.
      const fill = v === null ? MISSING : Number.isFinite(v) ? color(v) : EXACT;
      marks.push({ kind: 'rect', x, y, w: cw - 2, h: ch - 2, fill });
      const label = v === null ? '-' : Number.isFinite(v) ? v.toFixed(1) : 'exact';
      marks.push(text(x + cw / 2, y + 14, label, 'middle', { fill: v === null ? '#888' : '#fff' }));
    });
  });
  return { width: L + colLabels.length * cw + 10, height: T + rowLabels.length * ch + 10, marks };
}
