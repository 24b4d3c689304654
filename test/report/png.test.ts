// The PNG encoder against an independent decoder (png-decode.ts): signature, chunk CRCs and order, IHDR, and
// the pixels back byte for byte, unfiltered, in RGBA and RGB.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, encodePng } from '../../src/report/png.js';
import { decodePng } from './png-decode.js';

// 3x2 pixels whose bytes all differ, so that a swapped channel, row or column shows.
const W = 3, H = 2;
const data = Uint8Array.from({ length: W * H * 4 }, (_, i) => (i * 37 + 11) & 0xff);

test('crc32 gives the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('an RGBA PNG decodes to the same pixels, every row unfiltered', () => {
  const png = encodePng({ width: W, height: H, data });
  const img = decodePng(png);
  assert.deepEqual(img.chunkTypes, ['IHDR', 'IDAT', 'IEND']);
  assert.deepEqual([img.width, img.height, img.colorType], [W, H, 6]);
  assert.deepEqual(img.filters, [0, 0]);
  assert.deepEqual(img.rgba, data);
});

test('an RGB PNG drops alpha and keeps the color bytes', () => {
  const img = decodePng(encodePng({ width: W, height: H, data }, 'rgb'));
  assert.equal(img.colorType, 2);
  for (let i = 0; i < W * H; i++) {
    assert.deepEqual([...img.rgba.subarray(i * 4, i * 4 + 3)], [...data.subarray(i * 4, i * 4 + 3)], `pixel ${i}`);
    assert.equal(img.rgba[i * 4 + 3], 255);
  }
});

test('a flipped byte fails the chunk CRC, and bad input is refused', () => {
  const png = Buffer.from(encodePng({ width: W, height: H, data }));
  png[20] ^= 1; // inside IHDR's width/height bytes
  assert.throws(() => decodePng(png), /bad CRC in IHDR/);
  assert.throws(() => encodePng({ width: W, height: H, data: data.subarray(1) }), /expected 24 RGBA bytes/);
  assert.throws(() => encodePng({ width: 0, height: H, data: new Uint8Array(0) }), /bad PNG size/);
});
