// The raster canvas puts known primitives on known pixels, and the bitmap font is complete and unambiguous.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GLYPH_ROWS, GLYPH_W, glyphPixel, toFontText } from '../../src/report/font.js';
import { Canvas, parseColor, type Rgb } from '../../src/report/raster.js';

const RED: Rgb = [255, 0, 0];
const isRed = (c: Canvas, x: number, y: number): boolean => c.getPixel(x, y).join() === '255,0,0';
function inked(c: Canvas): { count: number; xs: number[]; ys: number[] } {
  const xs = new Set<number>(), ys = new Set<number>();
  let count = 0;
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) if (c.getPixel(x, y).join() !== '255,255,255') {
    count++;
    xs.add(x);
    ys.add(y);
  }
  return { count, xs: [...xs].sort((a, b) => a - b), ys: [...ys].sort((a, b) => a - b) };
}

test('parseColor reads the forms the charts use', () => {
  assert.deepEqual(parseColor('#2e86c1'), [0x2e, 0x86, 0xc1]);
  assert.deepEqual(parseColor('#eee'), [0xee, 0xee, 0xee]);
  assert.deepEqual(parseColor('rgb(200,60,50)'), [200, 60, 50]);
  assert.throws(() => parseColor('red'), /unsupported color/);
});

test('a rectangle covers exactly its pixels', () => {
  const c = new Canvas(20, 10);
  c.fillRect(2, 3, 5, 4, RED);
  for (const [x, y] of [[2, 3], [6, 3], [2, 6], [6, 6]] as const) assert.ok(isRed(c, x, y), `corner ${x},${y}`);
  for (const [x, y] of [[1, 3], [7, 3], [2, 2], [2, 7]] as const) assert.ok(!isRed(c, x, y), `outside ${x},${y}`);
  assert.equal(inked(c).count, 20);
  assert.deepEqual(c.getPixel(0, 0), [255, 255, 255], 'the background stays white');
});

test('lines have their width, polylines join, circles are round', () => {
  const thin = new Canvas(20, 10);
  thin.line(2, 5, 12, 5, 1, RED);
  assert.equal(inked(thin).ys.length, 1, 'a 1px horizontal line paints one row');
  assert.deepEqual([inked(thin).xs[0], inked(thin).xs.at(-1)], [2, 11]);
  const thick = new Canvas(20, 10);
  thick.line(4, 5, 14, 5, 4, RED);
  assert.deepEqual(inked(thick).ys, [3, 4, 5, 6], 'a 4px line paints four rows');
  const poly = new Canvas(20, 20);
  poly.polyline([{ x: 2, y: 2 }, { x: 17, y: 2 }, { x: 17, y: 17 }], 2, RED);
  // 2px wide: the rows above and below y = 2, the columns left and right of x = 17, and the corner joined
  assert.deepEqual([0, 1, 2, 3].map((y) => isRed(poly, 10, y)), [false, true, true, false]);
  assert.deepEqual([15, 16, 17, 18].map((x) => isRed(poly, x, 10)), [false, true, true, false]);
  assert.ok(isRed(poly, 16, 1) && isRed(poly, 17, 2) && isRed(poly, 16, 2), 'the corner is filled');
  assert.ok(!isRed(poly, 8, 10), 'nothing off the path');
  const disc = new Canvas(20, 20);
  disc.circle(10, 10, 3, RED);
  // samples at +-0.5, +-1.5, +-2.5 from the centre: all 36 but the 4 corners (2.5^2 + 2.5^2 > 9)
  assert.equal(inked(disc).count, 32);
  assert.deepEqual(inked(disc).xs, [7, 8, 9, 10, 11, 12]);
  assert.deepEqual(inked(disc).ys, [7, 8, 9, 10, 11, 12]);
});

test('text: glyph pixel counts, integer scaling, baseline and anchors', () => {
  const one = new Canvas(10, 12);
  one.text(0, 7, 'I', RED);
  assert.deepEqual(inked(one), { count: 11, xs: [1, 2, 3], ys: [0, 1, 2, 3, 4, 5, 6] }, "'I' is 3 + 5 + 3 pixels above the baseline");
  const big = new Canvas(20, 30);
  big.text(0, 21, 'I', RED, { scale: 3 });
  assert.equal(inked(big).count, 11 * 9);
  assert.deepEqual([inked(big).ys[0], inked(big).ys.at(-1)], [0, 20]);
  const desc = new Canvas(10, 12);
  desc.text(0, 7, 'g', RED);
  assert.equal(inked(desc).ys.at(-1), 8, "'g' descends two rows below the baseline");
  const end = new Canvas(40, 10);
  end.text(30, 8, 'ab', RED, { anchor: 'end' });
  assert.equal(Canvas.textWidth('ab', 1), 11);
  assert.ok(inked(end).xs.at(-1)! <= 29 && inked(end).xs[0]! >= 19, 'end-anchored text ends at x');
  const mid = new Canvas(40, 10);
  mid.text(20, 8, 'H', RED, { anchor: 'middle' });
  assert.deepEqual([inked(mid).xs[0], inked(mid).xs.at(-1)], [18, 22]);
  const bold = new Canvas(10, 12);
  bold.text(0, 7, 'I', RED, { bold: true });
  assert.ok(inked(bold).count > 11, 'bold adds ink');
  assert.throws(() => one.text(0, 7, 'I', RED, { scale: 1.5 }), /positive integer/);
});

test('every printable ASCII glyph has ink and no two look alike; other characters are spelled in ASCII', () => {
  const seen = new Map<string, string>();
  for (let code = 33; code < 127; code++) {
    const ch = String.fromCharCode(code);
    let bits = '';
    for (let row = 0; row < GLYPH_ROWS; row++) for (let col = 0; col < GLYPH_W; col++) bits += glyphPixel(ch, col, row) ? '1' : '0';
    assert.ok(bits.includes('1'), `'${ch}' has no ink`);
    assert.ok(!seen.has(bits), `'${ch}' looks like '${seen.get(bits)}'`);
    seen.set(bits, ch);
  }
  assert.equal(toFontText('KL(a ‖ b) → c…'), 'KL(a || b) -> c?');
});
