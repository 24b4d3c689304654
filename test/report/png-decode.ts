// A small PNG decoder for the report tests, written apart from src/report/png.ts so that the encoder is checked
// against an independent reading of the format (including its own bitwise CRC-32). It reads 8-bit truecolor
// (RGB, RGBA) without interlacing, checks the signature, every chunk's CRC and the chunk order, and undoes
// all five row filters: mopt's encoder writes filter 0 only, Chromium's screenshots use the others too.

import { inflateSync } from 'node:zlib';

export interface DecodedPng {
  width: number;
  height: number;
  colorType: number;
  /** RGBA, row-major; alpha 255 for RGB files */
  rgba: Uint8Array;
  /** the filter type byte of every row */
  filters: number[];
  chunkTypes: string[];
}

function crc32Bitwise(bytes: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

const paeth = (a: number, b: number, c: number): number => {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
};

export function decodePng(file: Uint8Array): DecodedPng {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (file.length < 8 || sig.some((b, i) => file[i] !== b)) throw new Error('not a PNG signature');
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const chunkTypes: string[] = [];
  const idat: Uint8Array[] = [];
  let ihdr: Uint8Array | undefined;
  for (let at = 8; ;) {
    if (at + 12 > file.length) throw new Error('truncated chunk');
    const len = view.getUint32(at);
    const type = String.fromCharCode(...file.subarray(at + 4, at + 8));
    const body = file.subarray(at + 8, at + 8 + len);
    if (crc32Bitwise(file.subarray(at + 4, at + 8 + len)) !== view.getUint32(at + 8 + len)) throw new Error(`bad CRC in ${type}`);
    chunkTypes.push(type);
    if (type === 'IHDR') ihdr = body;
    else if (type === 'IDAT') idat.push(body);
    at += 12 + len;
    if (type === 'IEND') {
      if (at !== file.length) throw new Error('bytes after IEND');
      break;
    }
  }
  if (chunkTypes[0] !== 'IHDR' || ihdr === undefined || ihdr.length !== 13) throw new Error('IHDR must come first, 13 bytes');
  const h = new DataView(ihdr.buffer, ihdr.byteOffset, 13);
  const [width, height, depth, colorType, interlace] = [h.getUint32(0), h.getUint32(4), ihdr[8]!, ihdr[9]!, ihdr[12]!];
  if (depth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, color type ${colorType}, interlace ${interlace}`);
  const bpp = colorType === 6 ? 4 : 3;
  const stride = width * bpp;
  const raw = inflateSync(Buffer.concat(idat));
  if (raw.length !== (stride + 1) * height) throw new Error(`image data holds ${raw.length} bytes, expected ${(stride + 1) * height}`);
  const px = new Uint8Array(stride * height);
  const filters: number[] = [];
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    filters.push(f);
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i]!;
      const a = i >= bpp ? px[y * stride + i - bpp]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + i]! : 0;
      const c = i >= bpp && y > 0 ? px[(y - 1) * stride + i - bpp]! : 0;
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : f === 4 ? paeth(a, b, c) : NaN;
      if (Number.isNaN(pred)) throw new Error(`unknown filter type ${f} in row ${y}`);
      px[y * stride + i] = (x + pred) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba.set(px.subarray(i * bpp, i * bpp + 3), i * 4);
    rgba[i * 4 + 3] = bpp === 4 ? px[i * 4 + 3]! : 255;
  }
  return { width, height, colorType, rgba, filters, chunkTypes };
}

/** '#rrggbb' of the pixel at (x, y) */
export function pixelHex(img: DecodedPng, x: number, y: number): string {
  const i = (y * img.width + x) * 4;
  return `#${[0, 1, 2].map((k) => img.rgba[i + k]!.toString(16).padStart(2, '0')).join('')}`;
}

/** How many pixels of each '#rrggbb' color the image holds. */
export function colorCounts(img: DecodedPng): Map<string, number> {
  const counts = new Map<string, number>();
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) {
    const c = pixelHex(img, x, y);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  return counts;
}
