// PNG encoder for the report's raster charts: signature, IHDR, one IDAT (zlib from node:zlib), IEND; 8-bit
// RGBA or RGB, no interlacing, filter type 0 (None) on every row. Charts are flat colors that deflate well
// without filtering, and unfiltered rows keep the files trivial to check.

import { deflateSync } from 'node:zlib';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

// CRC-32 as PNG specifies it (ISO 3309: reflected polynomial 0xedb88320, initial and final XOR 0xffffffff).
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** length, type, data, CRC over type and data */
function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export interface RgbaImage {
  width: number;
  height: number;
  /** RGBA bytes, row-major, top row first */
  data: Uint8Array;
}

/** The PNG file of an RGBA image; channels 'rgb' drops alpha (opaque images, a quarter smaller before deflate). */
export function encodePng(img: RgbaImage, channels: 'rgba' | 'rgb' = 'rgba'): Buffer {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) throw new Error(`bad PNG size ${width}x${height}`);
  if (data.length !== width * height * 4) throw new Error(`expected ${width * height * 4} RGBA bytes, got ${data.length}`);
  const bpp = channels === 'rgba' ? 4 : 3;
  const stride = 1 + width * bpp;
  const raw = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    // raw[y * stride] stays 0: filter type None
    if (bpp === 4) raw.set(data.subarray(y * width * 4, (y + 1) * width * 4), y * stride + 1);
    else for (let x = 0; x < width; x++) raw.set(data.subarray((y * width + x) * 4, (y * width + x) * 4 + 3), y * stride + 1 + x * 3);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bits per channel
  ihdr[9] = bpp === 4 ? 6 : 2; // color type: truecolor with alpha, or truecolor
  // bytes 10..12: compression 0 (deflate), filter method 0, interlace 0 (none)
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}
