// Small SVG charts for the reports (self-contained markup, no browser or canvas needed): line charts for loss
// curves, grouped horizontal bars for per-format comparisons, a heatmap for per-layer errors.

export const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2));
const open = (w: number, h: number): string => `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`;
const COLORS = ['#2e86c1', '#c0392b', '#27ae60', '#8e44ad', '#d68910'];

export interface Series {
  name: string;
  points: readonly { x: number; y: number }[];
}

/** Lines over a shared x axis (e.g. loss against step), with axis ticks and a legend. */
export function lineChart(title: string, xLabel: string, series: readonly Series[], w = 640, h = 320): string {
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0) return `${open(w, 40)}<text x="10" y="24">${esc(title)}: no data</text></svg>`;
  const [x0, x1] = [Math.min(...pts.map((p) => p.x)), Math.max(...pts.map((p) => p.x))];
  const [y0, y1] = [Math.min(...pts.map((p) => p.y)), Math.max(...pts.map((p) => p.y))];
  const L = 56, R = 16, T = 28, B = 40;
  const sx = (x: number): number => L + ((x - x0) / Math.max(1e-12, x1 - x0)) * (w - L - R);
  const sy = (y: number): number => T + (1 - (y - y0) / Math.max(1e-12, y1 - y0)) * (h - T - B);
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const axes = ticks.map((t) => {
    const yv = y0 + t * (y1 - y0);
    const xv = x0 + t * (x1 - x0);
    return `<line x1="${L}" x2="${w - R}" y1="${sy(yv).toFixed(1)}" y2="${sy(yv).toFixed(1)}" stroke="#ddd"/><text x="${L - 4}" y="${(sy(yv) + 4).toFixed(1)}" text-anchor="end">${fmt(yv)}</text>` +
      `<text x="${sx(xv).toFixed(1)}" y="${h - B + 16}" text-anchor="middle">${fmt(xv)}</text>`;
  });
  const lines = series.map((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const d = s.points.filter((p) => Number.isFinite(p.y)).map((p, j) => `${j === 0 ? 'M' : 'L'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join('');
    const dots = s.points.length <= 40 ? s.points.map((p) => `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="2.5" fill="${c}"/>`).join('') : '';
    return `<path d="${d}" fill="none" stroke="${c}" stroke-width="1.5"/>${dots}<text x="${w - R - 4}" y="${T + 14 * (i + 1)}" text-anchor="end" fill="${c}">${esc(s.name)}</text>`;
  });
  return `${open(w, h)}<text x="${L}" y="16" font-weight="bold">${esc(title)}</text>${axes.join('')}${lines.join('')}` +
    `<text x="${(L + w - R) / 2}" y="${h - 6}" text-anchor="middle">${esc(xLabel)}</text></svg>`;
}

/** One horizontal bar per label, for one metric (values >= 0 drawn from zero; negative values drawn leftwards in gray). */
export function barChart(title: string, rows: readonly { label: string; value: number | null; note?: string }[], w = 640): string {
  const bar = 18;
  const L = 130;
  const plot = w - L - 90;
  const vals = rows.map((r) => r.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const max = Math.max(1e-12, ...vals.map(Math.abs));
  const h = 28 + rows.length * bar;
  const items = rows.map((r, i) => {
    const y = 24 + i * bar;
    const v = r.value;
    const len = v === null || !Number.isFinite(v) ? 0 : (plot * Math.abs(v)) / max;
    return `<text x="${L - 6}" y="${y + 12}" text-anchor="end">${esc(r.label)}</text>` +
      `<rect x="${L}" y="${y + 3}" width="${Math.max(1, len).toFixed(1)}" height="${bar - 6}" fill="${v !== null && v < 0 ? '#95a5a6' : COLORS[0]}"/>` +
      `<text x="${L + len + 4}" y="${y + 12}">${v === null ? '-' : fmt(v)}${r.note ? ` ${esc(r.note)}` : ''}</text>`;
  });
  return `${open(w, h)}<text x="${L}" y="14" font-weight="bold">${esc(title)}</text>${items.join('')}</svg>`;
}

/** A grid of cells colored from red (low) to blue (high), each labeled with its value. */
export function heatmap(title: string, rowLabels: readonly string[], colLabels: readonly string[], value: (r: number, c: number) => number | null): string {
  const cw = 58, ch = 20, L = 80, T = 40;
  const vals: number[] = [];
  rowLabels.forEach((_, r) => colLabels.forEach((__, c) => {
    const v = value(r, c);
    if (v !== null && Number.isFinite(v)) vals.push(v);
  }));
  const [lo, hi] = vals.length ? [Math.min(...vals), Math.max(...vals)] : [0, 1];
  const color = (v: number): string => {
    const t = hi > lo ? (v - lo) / (hi - lo) : 1;
    return `rgb(${Math.round(200 * (1 - t) + 40 * t)},${Math.round(60 + 70 * t)},${Math.round(50 * (1 - t) + 190 * t)})`;
  };
  const cells = rowLabels.flatMap((rl, r) => [
    `<text x="${L - 6}" y="${T + r * ch + 14}" text-anchor="end">${esc(rl)}</text>`,
    ...colLabels.map((_, c) => {
      const v = value(r, c);
      const x = L + c * cw;
      const y = T + r * ch;
      if (v === null) return `<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="#eee"/><text x="${x + cw / 2}" y="${y + 14}" text-anchor="middle" fill="#888">-</text>`;
      return `<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="${Number.isFinite(v) ? color(v) : '#1b4f72'}"/><text x="${x + cw / 2}" y="${y + 14}" text-anchor="middle" fill="#fff">${Number.isFinite(v) ? v.toFixed(1) : 'exact'}</text>`;
    }),
  ]);
  const heads = colLabels.map((c, i) => `<text x="${L + i * cw + cw / 2}" y="${T - 6}" text-anchor="middle">${esc(c)}</text>`);
  return `${open(L + colLabels.length * cw + 10, T + rowLabels.length * ch + 10)}<text x="${L}" y="14" font-weight="bold">${esc(title)}</text>${heads.join('')}${cells.join('')}</svg>`;
}
