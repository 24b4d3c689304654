// SVG for the reports: a chart's Scene (geometry from chart.ts) written as self-contained markup, no browser or
// canvas needed.

import type { Mark, Scene } from './scene.js';

export const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** One decimal is below what a screen shows; integers print without ".0". */
const n = (x: number): string => String(Math.round(x * 10) / 10);

function mark(m: Mark): string {
  switch (m.kind) {
    case 'rect':
      return `<rect x="${n(m.x)}" y="${n(m.y)}" width="${n(m.w)}" height="${n(m.h)}" fill="${m.fill}"/>`;
    case 'line':
      return `<line x1="${n(m.x1)}" x2="${n(m.x2)}" y1="${n(m.y1)}" y2="${n(m.y2)}" stroke="${m.stroke}" stroke-width="${m.width}"/>`;
    case 'polyline': {
      const d = m.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${n(p.x)},${n(p.y)}`).join('');
      return `<path d="${d}" fill="none" stroke="${m.stroke}" stroke-width="${m.width}"/>`;
    }
    case 'circle':
      return `<circle cx="${n(m.cx)}" cy="${n(m.cy)}" r="${m.r}" fill="${m.fill}"/>`;
    case 'text': {
      const attrs = [`x="${n(m.x)}"`, `y="${n(m.y)}"`];
      if (m.anchor !== 'start') attrs.push(`text-anchor="${m.anchor}"`);
      if (m.fill !== undefined) attrs.push(`fill="${m.fill}"`);
      if (m.bold) attrs.push('font-weight="bold"');
      return `<text ${attrs.join(' ')}>${esc(m.text)}</text>`;
    }
  }
}

export function toSvg(s: Scene): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s.width}" height="${s.height}" viewBox="0 0 ${s.width} ${s.height}" font-family="sans-serif" font-size="11">` +
    `${s.marks.map(mark).join('')}</svg>`;
}
