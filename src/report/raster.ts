// A small RGBA canvas for PNG charts made without a browser: filled rectangles, thick lines and polylines,
// filled circles and text in the built-in bitmap font (font.ts) at an integer scale. No anti-aliasing: a
// pixel is painted when its sample point falls inside the shape, so the output is exact and deterministic.

import { GLYPH_ADVANCE, GLYPH_ASCENT, GLYPH_ROWS, GLYPH_W, glyphPixel, toFontText } from './font.js';

export type Rgb = readonly [number, number, number];

/** '#rgb', '#rrggbb' or 'rgb(r,g,b)' (the forms the charts use) as bytes. */
export function parseColor(c: string): Rgb {
  let m = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/i.exec(c);
  if (m) return [parseInt(m[1]! + m[1]!, 16), parseInt(m[2]! + m[2]!, 16), parseInt(m[3]! + m[3]!, 16)];
  m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
  if (m) return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
  m = /^rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$/.exec(c);
  if (m) return [Math.min(255, Number(m[1])), Math.min(255, Number(m[2])), Math.min(255, Number(m[3]))];
  throw new Error(`unsupported color ${c}`);
}

// Shapes are sampled a hair off the pixel centre, so a 1-pixel line centred on a pixel edge covers one row
// (not two, not none) and a shape's edge never ties with a sample point.
const SAMPLE = 0.5 + 1e-7;

export class Canvas {
  /** RGBA, row-major, top row first */
  readonly data: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: Rgb = [255, 255, 255]) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new Error(`bad canvas size ${width}x${height}`);
    this.data = new Uint8Array(width * height * 4);
    for (let i = 0; i < this.data.length; i += 4) {
      this.data[i] = background[0];
      this.data[i + 1] = background[1];
      this.data[i + 2] = background[2];
      this.data[i + 3] = 255;
    }
  }

  setPixel(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
    this.data[i + 3] = 255;
  }

  getPixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 4;
    return [this.data[i]!, this.data[i + 1]!, this.data[i + 2]!];
  }

  /** Paints every pixel whose sample point lies inside [x, x+w) x [y, y+h). */
  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const [xa, xb] = [Math.ceil(x - SAMPLE), Math.ceil(x + w - SAMPLE)];
    const [ya, yb] = [Math.ceil(y - SAMPLE), Math.ceil(y + h - SAMPLE)];
    for (let py = Math.max(0, ya); py < Math.min(this.height, yb); py++) {
      for (let px = Math.max(0, xa); px < Math.min(this.width, xb); px++) this.setPixel(px, py, c);
    }
  }

  /** A segment of the given width with round ends: every pixel within width/2 of it. */
  line(x1: number, y1: number, x2: number, y2: number, width: number, c: Rgb): void {
    const r = Math.max(width, 1) / 2;
    const [dx, dy] = [x2 - x1, y2 - y1];
    const len2 = dx * dx + dy * dy;
    const xa = Math.max(0, Math.floor(Math.min(x1, x2) - r)), xb = Math.min(this.width - 1, Math.ceil(Math.max(x1, x2) + r));
    const ya = Math.max(0, Math.floor(Math.min(y1, y2) - r)), yb = Math.min(this.height - 1, Math.ceil(Math.max(y1, y2) + r));
    for (let py = ya; py <= yb; py++) {
      for (let px = xa; px <= xb; px++) {
        const [sx, sy] = [px + SAMPLE, py + SAMPLE];
        const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((sx - x1) * dx + (sy - y1) * dy) / len2));
        const [ex, ey] = [sx - (x1 + t * dx), sy - (y1 + t * dy)];
        if (ex * ex + ey * ey < r * r) this.setPixel(px, py, c);
      }
    }
  }

  /** Connected segments; the round ends make the joins. */
  polyline(points: readonly { x: number; y: number }[], width: number, c: Rgb): void {
    if (points.length === 1) this.line(points[0]!.x, points[0]!.y, points[0]!.x, points[0]!.y, width, c);
    for (let i = 1; i < points.length; i++) this.line(points[i - 1]!.x, points[i - 1]!.y, points[i]!.x, points[i]!.y, width, c);
  }

  /** A filled disc: every pixel whose sample point is closer than r to the centre. */
  circle(cx: number, cy: number, r: number, c: Rgb): void {
    for (let py = Math.max(0, Math.floor(cy - r)); py <= Math.min(this.height - 1, Math.ceil(cy + r)); py++) {
      for (let px = Math.max(0, Math.floor(cx - r)); px <= Math.min(this.width - 1, Math.ceil(cx + r)); px++) {
        const [ex, ey] = [px + SAMPLE - cx, py + SAMPLE - cy];
        if (ex * ex + ey * ey < r * r) this.setPixel(px, py, c);
      }
    }
  }

  /** Width in pixels of s in the bitmap font at the given scale (no trailing spacing column). */
  static textWidth(s: string, scale: number): number {
    const n = toFontText(s).length;
    return n === 0 ? 0 : (n * GLYPH_ADVANCE - (GLYPH_ADVANCE - GLYPH_W)) * scale;
  }

  /**
   * Text with its baseline at y, anchored at x like SVG's text-anchor; each font pixel becomes a scale x scale
   * block. Bold draws every glyph twice, one pixel apart, which thickens the strokes without a second font.
   */
  text(x: number, y: number, s: string, c: Rgb, o: { scale?: number; anchor?: 'start' | 'middle' | 'end'; bold?: boolean } = {}): void {
    const scale = o.scale ?? 1;
    if (!Number.isInteger(scale) || scale < 1) throw new Error(`font scale must be a positive integer, got ${scale}`);
    const str = toFontText(s);
    const w = Canvas.textWidth(str, scale);
    const left = Math.round(o.anchor === 'middle' ? x - w / 2 : o.anchor === 'end' ? x - w : x);
    const top = Math.round(y) - GLYPH_ASCENT * scale;
    for (let i = 0; i < str.length; i++) {
      const gx = left + i * GLYPH_ADVANCE * scale;
      for (let row = 0; row < GLYPH_ROWS; row++) {
        for (let col = 0; col < GLYPH_W; col++) {
          if (!glyphPixel(str[i]!, col, row)) continue;
          const [px, py] = [gx + col * scale, top + row * scale];
          this.fillRect(px, py, scale, scale, c);
          if (o.bold) this.fillRect(px + 1, py, scale, scale, c);
        }
      }
    }
  }
}
