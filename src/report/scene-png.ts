// A chart's Scene painted on the raster canvas and encoded as PNG: the same marks as its SVG, at an integer
// pixel ratio (2 by default, so that the 5x7 bitmap font reads like the SVG's 11px text on today's screens).

import { encodePng } from './png.js';
import { Canvas, parseColor } from './raster.js';
import type { Mark, Scene } from './scene.js';

export const DEFAULT_PIXEL_RATIO = 2;

function paint(c: Canvas, m: Mark, k: number): void {
  switch (m.kind) {
    case 'rect':
      return c.fillRect(m.x * k, m.y * k, m.w * k, m.h * k, parseColor(m.fill));
    case 'line':
      return c.line(m.x1 * k, m.y1 * k, m.x2 * k, m.y2 * k, m.width * k, parseColor(m.stroke));
    case 'polyline':
      return c.polyline(m.points.map((p) => ({ x: p.x * k, y: p.y * k })), m.width * k, parseColor(m.stroke));
    case 'circle':
      return c.circle(m.cx * k, m.cy * k, m.r * k, parseColor(m.fill));
    case 'text':
      return c.text(m.x * k, m.y * k, m.text, parseColor(m.fill ?? '#000'), { scale: k, anchor: m.anchor, bold: m.bold === true });
  }
}

/** The scene on a white canvas of (width x height) * pixelRatio pixels. */
export function rasterize(s: Scene, pixelRatio = DEFAULT_PIXEL_RATIO): Canvas {
  if (!Number.isInteger(pixelRatio) || pixelRatio < 1) throw new Error(`pixel ratio must be a positive integer, got ${pixelRatio}`);
  const c = new Canvas(Math.ceil(s.width * pixelRatio), Math.ceil(s.height * pixelRatio));
  for (const m of s.marks) paint(c, m, pixelRatio);
  return c;
}

/** PNG bytes (opaque RGB) of the scene. */
export const sceneToPng = (s: Scene, pixelRatio = DEFAULT_PIXEL_RATIO): Buffer => encodePng(rasterize(s, pixelRatio), 'rgb');
