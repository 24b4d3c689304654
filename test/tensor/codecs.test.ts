// Number codec tests. References no one here wrote: the ml_dtypes tables in shared/data/numerics
// (see shared/data/README.md, "numerics"), plus references computed independently in this file (midpoint
// ties for float16/bfloat16, brute-force nearest value over each decode table). The ONNX Cast vectors are
// checked in test/io/onnx-tensor.test.ts.
//
// Documented differences from ml_dtypes (README): with saturation ml_dtypes keeps ±inf → NaN (e4m3fn) or
// ±inf (e5m2), where mopt follows ONNX saturate=1 and gives ±max; they are asserted explicitly below.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bf16BitsToF32, decodeToF32, e2m1ToF32, e4m3ToF32, e5m2ToF32, e8m0ToF32, encodeFromF32, f16BitsToF32,
  f32ToBf16Bits, f32ToE2M1, f32ToE4M3, f32ToE5M2, f32ToE8M0, f32ToF16Bits, int4ToNibble, nibbleToInt4,
  packNibbles, unpackNibbles,
} from '../../src/tensor/codecs.js';
import { SHARED_DATA, DATA_SKIP } from '../helpers/paths.js';

const DATA = SHARED_DATA;
const skip = DATA_SKIP;
const TABLES = join(DATA, 'numerics/ml_dtypes-tables');

type Fmt = 'float8_e4m3fn' | 'float8_e5m2' | 'float4_e2m1fn' | 'float8_e8m0fnu';

/** mopt's encoder for each ml_dtypes type (ml_dtypes' E8M0 rounding is mopt's 'nearest-even'). */
const ENCODE: { [K in Fmt]: (x: number, sat: boolean) => number } = {
  float8_e4m3fn: f32ToE4M3,
  float8_e5m2: f32ToE5M2,
  float4_e2m1fn: (x) => f32ToE2M1(x),
  float8_e8m0fnu: (x, sat) => f32ToE8M0(x, 'nearest-even', sat),
};
const DECODE: { [K in Fmt]: (c: number) => number } = {
  float8_e4m3fn: e4m3ToF32, float8_e5m2: e5m2ToF32, float4_e2m1fn: e2m1ToF32, float8_e8m0fnu: e8m0ToF32,
};
const FMTS = Object.keys(ENCODE) as Fmt[];

const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);
const bitsToF32 = (b: number): number => { u32[0] = b; return f32[0]!; };
const f32Bits = (x: number): number => { f32[0] = x; return u32[0]!; };

function csv(name: string): string[][] {
  return readFileSync(join(TABLES, name), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
}

/** Is `code` a NaN of this format, and its sign bit. */
function nanInfo(fmt: Fmt, code: number): { nan: boolean; neg: boolean } {
  switch (fmt) {
    case 'float8_e4m3fn': return { nan: (code & 0x7f) === 0x7f, neg: code >= 0x80 };
    case 'float8_e5m2': return { nan: (code & 0x7f) > 0x7c, neg: code >= 0x80 };
    default: return { nan: fmt === 'float8_e8m0fnu' && code === 0xff, neg: false };
  }
}

/**
 * The code ml_dtypes is expected to give where mopt differs by design, or null where they must agree.
 * Only saturating conversions of ±inf differ (README); checked so that any other difference fails.
 */
function documentedMlDtypes(fmt: Fmt, x: number, sat: boolean): number | null {
  if (!sat || Math.abs(x) !== Infinity) return null;
  const s = x < 0 ? 0x80 : 0;
  if (fmt === 'float8_e4m3fn') return s | 0x7f; // NaN; mopt gives ±448
  if (fmt === 'float8_e5m2') return s | 0x7c; // ±inf; mopt gives ±57344
  return null; // e2m1 saturates ±inf to ±6 in both; e8m0 maps inf to NaN in both
}

/** Compares mopt's code for x with ml_dtypes' code; returns a description of a mismatch, or null. */
function compare(fmt: Fmt, x: number, sat: boolean, expected: number, got: number): string | null {
  const doc = documentedMlDtypes(fmt, x, sat);
  if (doc !== null) {
    const max = fmt === 'float8_e4m3fn' ? 0x7e : 0x7b;
    if (expected !== doc) return `ml_dtypes no longer shows the documented difference for ${x}: ${expected}`;
    return got === ((x < 0 ? 0x80 : 0) | max) ? null : `${x} (sat) → ${got}, expected ±max`;
  }
  if (got === expected) return null;
  // ml_dtypes keeps float16 NaN payload bits in e5m2 (0x7f for some payloads); mopt emits the canonical
  // quiet NaN. Same NaN-ness and sign is the contract.
  const e = nanInfo(fmt, expected), g = nanInfo(fmt, got);
  if (Number.isNaN(x) && e.nan && g.nan && e.neg === g.neg) return null;
  return `${fmt} ${sat ? 'sat' : 'nosat'}: ${x} → 0x${got.toString(16)}, ml_dtypes 0x${expected.toString(16)}`;
}

test('ml_dtypes decode tables: every code decodes to the listed float32', { skip }, () => {
  for (const fmt of FMTS) {
    for (const [codeS, bitsS] of csv(`${fmt}_decode.csv`)) {
      const code = parseInt(codeS!, 16), bits = parseInt(bitsS!, 16);
      const want = bitsToF32(bits);
      const got = DECODE[fmt](code);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `${fmt} 0x${code.toString(16)}`);
      else assert.ok(Object.is(got, want), `${fmt} 0x${code.toString(16)}: ${got} vs ${want}`);
    }
  }
  // The bulk decoders write bits: compare them exactly, NaN sign included.
  for (const fmt of ['float8_e4m3fn', 'float8_e5m2'] as const) {
    const rows = csv(`${fmt}_decode.csv`);
    const out = new Float32Array(rows.length);
    decodeToF32(fmt, Uint8Array.from(rows, (r) => parseInt(r[0]!, 16)), out);
    const bits = new Uint32Array(out.buffer);
    rows.forEach((r, i) => assert.equal(bits[i], parseInt(r[1]!, 16), `${fmt} bulk 0x${r[0]}`));
  }
});

test('ml_dtypes tables: all 65,536 float16 and bfloat16 inputs, saturating and not', { skip }, () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const src of ['f16', 'bf16'] as const) {
    const values = new Float32Array(65536);
    decodeToF32(src === 'f16' ? 'float16' : 'bfloat16', all, values);
    for (const fmt of FMTS) {
      for (const sat of [true, false]) {
        const table = readFileSync(join(TABLES, `${fmt}_from_${src}_${sat ? 'sat' : 'nosat'}.u8`));
        assert.equal(table.length, 65536);
        const bulk = new Uint8Array(65536);
        const bulkFmt = fmt === 'float8_e4m3fn' || fmt === 'float8_e5m2' ? fmt : null;
        if (bulkFmt !== null) encodeFromF32(bulkFmt, values, bulk, sat);
        const bad: string[] = [];
        for (let i = 0; i < 65536; i++) {
          // Scalar path: decode the bit pattern with the scalar decoder, then encode.
          const x = src === 'f16' ? f16BitsToF32(i) : bf16BitsToF32(i);
          const got = ENCODE[fmt](x, sat);
          const msg = compare(fmt, x, sat, table[i]!, got);
          if (msg !== null) bad.push(`0x${i.toString(16)}: ${msg}`);
          if (bulkFmt !== null && bulk[i] !== got) bad.push(`0x${i.toString(16)}: bulk ${bulk[i]} vs scalar ${got}`);
        }
        assert.deepEqual(bad.slice(0, 10), [], `${fmt} from ${src} ${sat ? 'sat' : 'nosat'}: ${bad.length} mismatches`);
      }
    }
  }
});

test('ml_dtypes boundary tables: representable values, midpoints, ±1 ulp, overflow, specials', { skip }, () => {
  for (const fmt of FMTS) {
    const rows = csv(`${fmt}_from_f32_boundaries.csv`);
    const xs = Float32Array.from(rows, (r) => bitsToF32(parseInt(r[0]!, 16)));
    for (const sat of [true, false]) {
      const col = sat ? 3 : 2;
      const bulk = new Uint8Array(rows.length);
      if (fmt === 'float8_e4m3fn' || fmt === 'float8_e5m2') encodeFromF32(fmt, xs, bulk, sat);
      rows.forEach((r, i) => {
        const expected = parseInt(r[col]!, 16);
        const got = ENCODE[fmt](xs[i]!, sat);
        const msg = compare(fmt, xs[i]!, sat, expected, got);
        assert.equal(msg, null, `row ${r[0]} (${r[1]})`);
        if (fmt === 'float8_e4m3fn' || fmt === 'float8_e5m2') assert.equal(bulk[i], got, `bulk row ${r[0]}`);
      });
    }
  }
});

test('float8 overflow thresholds: ties at the top round to even', () => {
  // 464 is the midpoint of 448 and the non-existent 480; 448 has the even mantissa, so 464 does not overflow.
  assert.equal(f32ToE4M3(464, false), 0x7e);
  assert.equal(f32ToE4M3(Math.fround(464 + 2 ** -15), false), 0x7f);
  assert.equal(f32ToE4M3(464.00000000001, false), 0x7f); // a double: rounds its exact value, not via float32
  assert.equal(f32ToE4M3(-500, true), 0xfe);
  // 61440 is the midpoint of 57344 (odd mantissa) and 65536 (= inf): the tie goes to inf.
  assert.equal(f32ToE5M2(61439.99, false), 0x7b);
  assert.equal(f32ToE5M2(61440, false), 0x7c);
  assert.equal(f32ToE5M2(61440, true), 0x7b);
  assert.equal(f32ToE5M2(-Infinity, true), 0xfb);
  assert.equal(f32ToE4M3(-Infinity, false), 0xff);
  assert.equal(f32ToE2M1(5), 0x6); // tie → 4
  assert.equal(f32ToE2M1(5.000001), 0x7);
  assert.equal(f32ToE2M1(-1e30), 0xf);
});

// ---------------------------------------------------------------------------------------------------
// float16 / bfloat16

const f64 = new Float64Array(1);
const f64b = new BigUint64Array(f64.buffer);
/** The next double above/below x (x finite, > 0). */
const nextUp = (x: number): number => { f64[0] = x; f64b[0]! += 1n; return f64[0]!; };
const nextDown = (x: number): number => { f64[0] = x; f64b[0]! -= 1n; return f64[0]!; };

interface Half { name: 'float16' | 'bfloat16'; enc: (x: number) => number; dec: (b: number) => number; maxFinite: number; inf: number }
const HALVES: Half[] = [
  { name: 'float16', enc: f32ToF16Bits, dec: f16BitsToF32, maxFinite: 0x7bff, inf: 0x7c00 },
  { name: 'bfloat16', enc: f32ToBf16Bits, dec: bf16BitsToF32, maxFinite: 0x7f7f, inf: 0x7f80 },
];

test('float16/bfloat16: every bit pattern round-trips (scalar and bulk), NaNs stay NaN with their sign', () => {
  for (const h of HALVES) {
    const all = new Uint16Array(65536).map((_, i) => i);
    const vals = new Float32Array(65536);
    decodeToF32(h.name, all, vals);
    const back = new Uint16Array(65536);
    encodeFromF32(h.name, vals, back);
    for (let b = 0; b < 65536; b++) {
      const x = h.dec(b);
      assert.ok(Object.is(vals[b], x) || (Number.isNaN(vals[b]) && Number.isNaN(x)), `${h.name} bulk decode 0x${b.toString(16)}`);
      const isNaN = (b & 0x7fff) > h.inf;
      for (const got of [h.enc(x), back[b]!]) {
        if (isNaN) {
          assert.ok((got & 0x7fff) > h.inf && (got & 0x8000) === (b & 0x8000), `${h.name} NaN 0x${b.toString(16)} → 0x${got.toString(16)}`);
        } else {
          assert.equal(got, b, `${h.name} 0x${b.toString(16)}`);
        }
      }
    }
  }
});

test('float16/bfloat16 rounding: midpoints tie to even, neighbours of midpoints go to the nearer value', () => {
  for (const h of HALVES) {
    const xs: number[] = [];
    const want: number[] = [];
    // Adjacent finite pairs (lo, lo+1) plus (maxFinite, inf) whose midpoint is the overflow threshold.
    for (let lo = 0; lo <= h.maxFinite; lo++) {
      const a = h.dec(lo);
      const b = lo === h.maxFinite ? 2 * h.dec(h.maxFinite) - h.dec(h.maxFinite - 1) : h.dec(lo + 1);
      const mid = (a + b) / 2; // exact in double
      const even = (lo & 1) === 0 ? lo : lo + 1;
      const cases: [number, number][] = [[mid, even], [nextDown(mid), lo], [nextUp(mid), lo + 1]];
      // float32 neighbours of the midpoint (the midpoint itself is a float32 for both formats)
      if (Math.fround(mid) === mid && mid > 0) {
        cases.push([bitsToF32(f32Bits(mid) - 1), lo], [bitsToF32(f32Bits(mid) + 1), lo + 1]);
      }
      for (const [x, w] of cases) {
        if (x > 0) { xs.push(x, -x); want.push(w, w | 0x8000); }
      }
    }
    xs.forEach((x, i) => assert.equal(h.enc(x), want[i], `${h.name} scalar ${x}`));
    // Bulk float32 path on the float32-representable inputs (it uses integer tricks, not the scalar code).
    const idx = xs.map((_, i) => i).filter((i) => Math.fround(xs[i]!) === xs[i]);
    const src = Float32Array.from(idx, (i) => xs[i]!);
    const out = new Uint16Array(src.length);
    encodeFromF32(h.name, src, out);
    idx.forEach((i, k) => assert.equal(out[k], want[i], `${h.name} bulk ${xs[i]}`));
  }
  assert.equal(f32ToF16Bits(2 ** -25), 0); // half the smallest subnormal: tie to 0
  assert.equal(f32ToF16Bits(nextUp(2 ** -25)), 1);
  assert.equal(f32ToF16Bits(-1e-30), 0x8000);
  assert.equal(f32ToBf16Bits(1e39), 0x7f80); // beyond float32 range, still one rounding
  assert.equal(f32ToBf16Bits(NaN), 0x7fc0);
  assert.equal(f32ToF16Bits(-NaN), f32ToF16Bits(bitsToF32(0xffc00000)));
});

// ---------------------------------------------------------------------------------------------------
// Property tests: random inputs against a brute-force nearest value, ties to the even code.

/** mulberry32: small seeded PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Nearest finite magnitude code by brute force; ties go to the even code (= even mantissa). */
function bruteNearest(a: number, mags: number[]): number {
  let best = 0;
  for (let c = 1; c < mags.length; c++) {
    const d = Math.abs(a - mags[c]!), db = Math.abs(a - mags[best]!);
    if (d < db || (d === db && (c & 1) === 0)) best = c;
  }
  return best;
}

test('float8/float4: random inputs encode to the nearest value, ties to even (brute force)', () => {
  const cases = [
    { name: 'e4m3fn', enc: f32ToE4M3, dec: e4m3ToF32, maxMag: 0x7e, sign: 0x80, maxExp: 9 },
    { name: 'e5m2', enc: f32ToE5M2, dec: e5m2ToF32, maxMag: 0x7b, sign: 0x80, maxExp: 16 },
    { name: 'e2m1', enc: (x: number, _s: boolean) => f32ToE2M1(x), dec: e2m1ToF32, maxMag: 0x7, sign: 0x8, maxExp: 3 },
  ];
  const rand = rng(12345);
  for (const c of cases) {
    const mags = Array.from({ length: c.maxMag + 1 }, (_, k) => c.dec(k));
    const inputs: number[] = [];
    for (let i = 0; i < 4000; i++) {
      // log-uniform magnitudes from far below the smallest subnormal to beyond the maximum
      const x = 2 ** (rand() * (c.maxExp + 22) - 20) * (rand() < 0.5 ? -1 : 1);
      inputs.push(x, Math.fround(x));
    }
    // exact midpoints of every adjacent pair, and values a hair around them
    for (let k = 0; k < c.maxMag; k++) {
      const m = (mags[k]! + mags[k + 1]!) / 2;
      inputs.push(m, nextUp(m), nextDown(m), -m);
    }
    for (const x of inputs) {
      const want = (x < 0 ? c.sign : 0) | bruteNearest(Math.abs(x), mags);
      assert.equal(c.enc(x, true), want, `${c.name} ${x}`);
    }
    // the bulk float32 path agrees with the scalar one
    if (c.name !== 'e2m1') {
      const dt = c.name === 'e4m3fn' ? 'float8_e4m3fn' : 'float8_e5m2';
      const src = Float32Array.from(inputs);
      const out = new Uint8Array(src.length);
      for (const sat of [true, false]) {
        encodeFromF32(dt, src, out, sat);
        src.forEach((x, i) => assert.equal(out[i], c.enc(x, sat), `${dt} bulk ${x}`));
        const src64 = Float64Array.from(inputs);
        encodeFromF32(dt, src64, out, sat);
        src64.forEach((x, i) => assert.equal(out[i], c.enc(x, sat), `${dt} bulk f64 ${x}`));
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// E8M0

test('e8m0: up and nearest rounding, specials, float32-subnormal inputs as the references treat them', () => {
  for (let c = 0; c < 255; c++) {
    const v = e8m0ToF32(c);
    assert.equal(v, 2 ** (c - 127));
    assert.equal(f32ToE8M0(v, 'up'), c === 0 ? 1 : c); // 2^-127 is a float32 subnormal: see below
    assert.equal(f32ToE8M0(v, 'nearest-even'), c);
  }
  assert.ok(Number.isNaN(e8m0ToF32(255)));
  assert.equal(f32ToE8M0(1.0000001, 'up'), 128);
  assert.equal(f32ToE8M0(1.4999999, 'nearest-even'), 127);
  assert.equal(f32ToE8M0(1.5, 'nearest-even'), 128); // ties go up (ml_dtypes, ONNX "nearest")
  assert.equal(f32ToE8M0(3, 'nearest-even'), 129); // even when that is an odd code
  assert.equal(f32ToE8M0(2 ** 127 * 1.5, 'nearest-even'), 0xfe);
  assert.equal(f32ToE8M0(2 ** 127 * 1.5, 'nearest-even', false), 0xff);
  assert.equal(f32ToE8M0(2 ** 127 * 1.0000001, 'up'), 0xfe);
  assert.equal(f32ToE8M0(2 ** 127 * 1.0000001, 'up', false), 0xff);
  for (const r of ['up', 'nearest-even'] as const) {
    for (const x of [NaN, Infinity, -Infinity]) assert.equal(f32ToE8M0(x, r), 0xff);
    assert.equal(f32ToE8M0(0, r), 0);
    assert.equal(f32ToE8M0(-4, r), 0);
    assert.equal(f32ToE8M0(0, r, false), 0xff);
    assert.equal(f32ToE8M0(-0, r, false), 0xff);
  }
  // float32 subnormals (< 2^-126): rounded linearly as bit patterns, like ONNX's and ml_dtypes' code
  assert.equal(f32ToE8M0(2 ** -127, 'up'), 1); // ONNX: exponent field 0 with a nonzero fraction → +1
  assert.equal(f32ToE8M0(2 ** -149, 'up'), 1);
  assert.equal(f32ToE8M0(2 ** -127, 'nearest-even'), 0);
  assert.equal(f32ToE8M0(2 ** -127 * 1.0625, 'nearest-even'), 1); // ml_dtypes row 0x00440000
  assert.equal(f32ToE8M0(2 ** -149, 'nearest-even'), 0);
});

// ---------------------------------------------------------------------------------------------------
// Other dtypes in the bulk functions, packing helpers, argument checks

test('bulk conversion of float and integer dtypes (ints truncate toward zero and clamp)', () => {
  const src = Float32Array.from([1.9, -1.9, 2.5, -0.5, 300, -300, NaN, Infinity, -Infinity, 0]);
  const i8 = new Int8Array(src.length);
  encodeFromF32('int8', src, i8);
  assert.deepEqual([...i8], [1, -1, 2, 0, 127, -128, 0, 127, -128, 0]);
  const u8 = new Uint8Array(src.length);
  encodeFromF32('uint8', src, u8);
  assert.deepEqual([...u8], [1, 0, 2, 0, 255, 0, 0, 255, 0, 0]);
  const b = new Uint8Array(src.length);
  encodeFromF32('bool', src, b);
  assert.deepEqual([...b], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
  const i64 = new BigInt64Array(4);
  encodeFromF32('int64', Float64Array.from([-(2 ** 63), 2 ** 64, -7.9, NaN]), i64);
  assert.deepEqual([...i64], [-(2n ** 63n), 2n ** 63n - 1n, -7n, 0n]);
  const i32 = new Int32Array(3);
  encodeFromF32('int32', Float64Array.from([2 ** 40, -(2 ** 40), -2147483648.5]), i32);
  assert.deepEqual([...i32], [2147483647, -2147483648, -2147483648]);

  const out = new Float32Array(3);
  // 2^60 + 2^36 + 1: via a double it becomes the float32 tie 2^60 + 2^36 → 2^60; exactly it is above the tie.
  decodeToF32('int64', BigInt64Array.from([2n ** 60n + 2n ** 36n + 1n, -(2n ** 60n + 2n ** 36n), 5n]), out);
  assert.deepEqual([...out], [2 ** 60 + 2 ** 37, -(2 ** 60), 5]);
  decodeToF32('float64', Float64Array.from([1 + 2 ** -24, 1 + 3 * 2 ** -24, 1e300]), out);
  assert.deepEqual([...out], [1, 1 + 2 ** -22, Infinity]);
  decodeToF32('int8', Int8Array.from([-128, 0, 127]), out);
  assert.deepEqual([...out], [-128, 0, 127]);
  const f64out = new Float64Array(2);
  encodeFromF32('float64', Float32Array.from([0.1, -2]), f64out);
  assert.deepEqual([...f64out], [Math.fround(0.1), -2]);

  assert.throws(() => encodeFromF32('float16', src, new Uint8Array(src.length)), TypeError);
  assert.throws(() => decodeToF32('float8_e4m3fn', new Uint16Array(2), new Float32Array(2)), TypeError);
  assert.throws(() => decodeToF32('float32', new Float32Array(2), new Float32Array(3)), RangeError);
});

test('nibble packing: element 2k low, 2k+1 high; int4 two\'s complement', () => {
  assert.deepEqual([...packNibbles(Uint8Array.from([1, 2, 3, 4, 15]))], [0x21, 0x43, 0x0f]);
  assert.deepEqual([...unpackNibbles(Uint8Array.from([0x21, 0x43, 0x0f]), 5)], [1, 2, 3, 4, 15]);
  assert.deepEqual([...unpackNibbles(Uint8Array.from([0xba]), 2)], [0xa, 0xb]);
  assert.deepEqual([...packNibbles(new Uint8Array(0))], []);
  const rand = rng(7);
  const codes = Uint8Array.from({ length: 1001 }, () => Math.floor(rand() * 16));
  assert.deepEqual(unpackNibbles(packNibbles(codes), codes.length), codes);
  for (let v = -8; v <= 7; v++) {
    assert.equal(nibbleToInt4(int4ToNibble(v)), v);
    assert.equal(int4ToNibble(v), (v + 16) % 16);
  }
  assert.throws(() => packNibbles(Uint8Array.from([16])), RangeError);
  assert.throws(() => unpackNibbles(new Uint8Array(2), 5), RangeError);
  assert.throws(() => int4ToNibble(8), RangeError);
  assert.throws(() => int4ToNibble(-9), RangeError);
  assert.throws(() => int4ToNibble(1.5), RangeError);
  assert.throws(() => nibbleToInt4(16), RangeError);
});
