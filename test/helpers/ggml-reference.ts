// ggml's block formats written out a second time for the GGUF tests, from ggml-quants.c's reference code and
// ggml-common.h's block structs, independently of src/export/gguf-quants.ts: float32 arithmetic through a
// Float32Array cell, blocks read and written through DataView, levels unpacked per element.

const cell = new Float32Array(1);
/** one float32 operation's result */
const r32 = (x: number): number => ((cell[0] = x), cell[0]!);
const toF16 = (x: number): number => {
  // IEEE half, round to nearest even, via the bits of the float32 value
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, x, true);
  const u = b.getUint32(0, true);
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = man >>> shift;
    const rest = man & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = man >>> 13;
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) m++;
  if (m === 0x400) {
    m = 0;
    e++;
    if (e >= 31) return sign | 0x7c00;
  }
  return sign | (e << 10) | m;
};
export const halfToFloat = (h: number): number => {
  const e = (h >> 10) & 31;
  const m = h & 1023;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
};
const rne = (x: number): number => {
  const fl = Math.floor(x);
  const d = x - fl;
  return d > 0.5 || (d === 0.5 && fl % 2 !== 0) ? fl + 1 : fl;
};

export function refQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const d = r32(amax / 127);
    const id = d ? r32(1 / d) : 0;
    v.setUint16(b * 34, toF16(d), true);
    for (let j = 0; j < 32; j++) {
      const q = r32(x[b * 32 + j]! * id);
      v.setInt8(b * 34 + 2 + j, Math.sign(q) * Math.floor(Math.abs(q) + 0.5));
    }
  }
  return out;
}

export function refQ4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 18);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) if (Math.abs(x[b * 32 + j]!) > amax) [amax, max] = [Math.abs(x[b * 32 + j]!), x[b * 32 + j]!];
    const d = r32(max / -8);
    const id = d ? r32(1 / d) : 0;
    v.setUint16(b * 18, toF16(d), true);
    const level = (j: number): number => Math.min(15, Math.trunc(r32(r32(x[b * 32 + j]! * id) + 8.5)));
    for (let j = 0; j < 16; j++) v.setUint8(b * 18 + 2 + j, level(j) | (level(j + 16) << 4));
  }
  return out;
}

/** ggml's make_qkx2_quants (nmax 15, rmin -1, rdelta 0.1, 20 steps, squared error): [scale, -min, levels] */
function subBlock(x: Float32Array, w: Float32Array): [number, number, number[]] {
  let lo = Math.min(0, ...x);
  const hi = Math.max(...x);
  if (hi === lo) return [0, -lo, new Array<number>(32).fill(0)];
  let sw = 0;
  let sx = 0;
  for (let i = 0; i < 32; i++) {
    sw = i === 0 ? w[0]! : r32(sw + w[i]!);
    sx = i === 0 ? r32(w[0]! * x[0]!) : r32(sx + r32(w[i]! * x[i]!));
  }
  const levelsFor = (is: number, min: number): number[] => Array.from(x, (xi) => Math.max(0, Math.min(15, rne(r32(is * r32(xi - min))))));
  const err = (scale: number, min: number, L: number[]): number => {
    let e = 0;
    for (let i = 0; i < 32; i++) {
      const dd = r32(r32(r32(scale * L[i]!) + min) - x[i]!);
      e = r32(e + r32(w[i]! * r32(dd * dd)));
    }
    return e;
  };
  let iscale = r32(15 / r32(hi - lo));
  let scale = r32(1 / iscale);
  let L = levelsFor(iscale, lo);
  let best = err(scale, lo, L);
  for (let step = 0; step <= 20; step++) {
    iscale = r32(r32(r32(-1 + r32(r32(0.1) * step)) + 15) / r32(hi - lo));
    const aux = levelsFor(iscale, lo);
    let sl = 0;
    let sl2 = 0;
    let sxl = 0;
    for (let i = 0; i < 32; i++) {
      const wl = r32(w[i]! * aux[i]!);
      sl = r32(sl + wl);
      sl2 = r32(sl2 + r32(wl * aux[i]!));
      sxl = r32(sxl + r32(wl * x[i]!));
    }
    const D = r32(r32(sw * sl2) - r32(sl * sl));
    if (!(D > 0)) continue;
    let s = r32(r32(r32(sw * sxl) - r32(sx * sl)) / D);
    let m = r32(r32(r32(sl2 * sx) - r32(sl * sxl)) / D);
    if (m > 0) [m, s] = [0, r32(sxl / sl2)];
    const e = err(s, m, aux);
    if (e < best) [best, scale, lo, L] = [e, s, m, aux];
  }
  return [scale, -lo, L];
}

export function refQ4_K(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 256) * 144);
  const v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 256; b++) {
    const at = b * 144;
    const subs = Array.from({ length: 8 }, (_, j) => {
      const xs = x.subarray(b * 256 + 32 * j, b * 256 + 32 * j + 32);
      let s2 = 0;
      for (const t of xs) s2 = r32(s2 + r32(t * t));
      const av = r32(Math.sqrt(r32(s2 / 32)));
      return subBlock(xs, Float32Array.from(xs, (t) => r32(av + Math.abs(t))));
    });
    const maxScale = Math.max(0, ...subs.map((s) => s[0]));
    const maxMin = Math.max(0, ...subs.map((s) => s[1]));
    const is = maxScale > 0 ? r32(63 / maxScale) : 0;
    const im = maxMin > 0 ? r32(63 / maxMin) : 0;
    const ls = subs.map((s) => Math.min(63, rne(r32(is * s[0])) & 0xff));
    const lm = subs.map((s) => Math.min(63, rne(r32(im * s[1])) & 0xff));
    v.setUint16(at, toF16(r32(maxScale / 63)), true);
    v.setUint16(at + 2, toF16(r32(maxMin / 63)), true);
    // 6-bit scales: sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins), 4-7 split into
    // a low nibble in bytes 8-11 and their top 2 bits in the high bits of bytes 0-3 / 4-7
    for (let j = 0; j < 4; j++) {
      out[at + 4 + j] = ls[j]! | ((ls[j + 4]! >> 4) << 6);
      out[at + 8 + j] = lm[j]! | ((lm[j + 4]! >> 4) << 6);
      out[at + 12 + j] = (ls[j + 4]! & 15) | ((lm[j + 4]! & 15) << 4);
    }
    const d = halfToFloat(v.getUint16(at, true));
    const dmin = halfToFloat(v.getUint16(at + 2, true));
    const L = subs.flatMap((s, j) => {
      const ds = r32(d * ls[j]!);
      if (ds === 0) return s[2];
      const dm = r32(dmin * lm[j]!);
      return s[2].map((_, i) => Math.max(0, Math.min(15, rne(r32(r32(x[b * 256 + 32 * j + i]! + dm) / ds)))));
    });
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) out[at + 16 + 32 * c + l] = L[64 * c + l]! | (L[64 * c + 32 + l]! << 4);
  }
  return out;
}

/** Decodes ggml blocks (F16, Q8_0, Q4_0, Q4_K) of n elements. */
export function refDequantize(type: 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_K' | 'F32', bytes: Uint8Array, n: number): Float32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (type === 'F32') y[i] = v.getFloat32(4 * i, true);
    else if (type === 'F16') y[i] = halfToFloat(v.getUint16(2 * i, true));
    else if (type === 'Q8_0') y[i] = r32(v.getInt8(34 * (i >> 5) + 2 + (i & 31)) * halfToFloat(v.getUint16(34 * (i >> 5), true)));
    else if (type === 'Q4_0') {
      const at = 18 * (i >> 5);
      const j = i & 31;
      const q = (v.getUint8(at + 2 + (j & 15)) >> (j < 16 ? 0 : 4)) & 15;
      y[i] = r32((q - 8) * halfToFloat(v.getUint16(at, true)));
    } else {
      const at = 144 * (i >> 8);
      const k = i & 255;
      const sub = k >> 5;
      const s = bytes.subarray(at + 4, at + 16);
      const sc = sub < 4 ? s[sub]! & 63 : (s[sub + 4]! & 15) | ((s[sub - 4]! >> 6) << 4);
      const m = sub < 4 ? s[sub + 4]! & 63 : (s[sub + 4]! >> 4) | ((s[sub]! >> 6) << 4);
      const q = (bytes[at + 16 + 32 * (sub >> 1) + (k & 31)]! >> ((sub & 1) * 4)) & 15;
      y[i] = r32(r32(r32(halfToFloat(v.getUint16(at, true)) * sc) * q) - r32(halfToFloat(v.getUint16(at + 2, true)) * m));
    }
  }
  return y;
}
