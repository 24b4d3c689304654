// Drawing primitives a chart is made of. The chart code (chart.ts) decides geometry once; svg.ts turns a scene
// into SVG markup and scene-png.ts paints it on a raster canvas, so both outputs show the same marks.
// Coordinates are CSS pixels with the origin at the top left; text y is the baseline, as in SVG.

/** A CSS color the backends understand: '#rgb', '#rrggbb' or 'rgb(r,g,b)'. */
export type Color = string;
export type Anchor = 'start' | 'middle' | 'end';

export interface RectMark {
  kind: 'rect';
  x: number;
  y: number;
  w: number;
  h: number;
  fill: Color;
}
export interface LineMark {
  kind: 'line';
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  stroke: Color;
  width: number;
}
export interface PolylineMark {
  kind: 'polyline';
  points: readonly { x: number; y: number }[];
  stroke: Color;
  width: number;
}
export interface CircleMark {
  kind: 'circle';
  cx: number;
  cy: number;
  r: number;
  fill: Color;
}
export interface TextMark {
  kind: 'text';
  x: number;
  y: number;
  text: string;
  anchor: Anchor;
  /** omitted: black */
  fill?: Color;
  bold?: boolean;
}
export type Mark = RectMark | LineMark | PolylineMark | CircleMark | TextMark;

/** One chart: its size and its marks in painting order (later marks cover earlier ones). */
export interface Scene {
  width: number;
  height: number;
  marks: Mark[];
}

export const text = (x: number, y: number, s: string, anchor: Anchor = 'start', extra: { fill?: Color; bold?: boolean } = {}): TextMark => ({ kind: 'text', x, y, text: s, anchor, ...extra });
