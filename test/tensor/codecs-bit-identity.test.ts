// The fast codec paths (decode tables, bit-trick encoders, pair-wise nibble packing) against the pre-speedup
// codecs.ts kept in test/helpers/slow-reference as the oracle: every output must be bit-identical.
//
// Float32 inputs are covered by equivalence class: every narrow format here keeps at most 10 mantissa bits,
// so the low 12 bits of a float32 only act as "sticky" bits (zero or not) in a rounding. The inputs are every
// one of the 2^20 high-bit patterns (sign, exponent, top 11 mantissa bits, i.e. every float32 incl. ±inf and
// NaNs) combined with low 12 bits 0, 1, 0x7ff, 0x800, 0x801 and 0xfff: that hits every tie, every value one
// ulp either side of a tie, and every exponent (denormals included). Scalar encoders also take doubles, which
// get random and near-threshold double samples.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fast from '../../src/tensor/codecs.js';
import * as old from '../helpers/slow-reference/codecs.js';

const LOW_BITS = [0, 1, 0x7ff, 0x800, 0x801, 0xfff];

/** Every float32 equivalence class (see the header), as a Float32Array over the bit patterns. */
function allFloat32Classes(): { f32: Float32Array; u32: Uint32Array } {
  const u32 = new Uint32Array((1 << 20) * LOW_BITS.length);
  let k = 0;
  for (let hi = 0; hi < 1 << 20; hi++) for (const lo of LOW_BITS) u32[k++] = ((hi << 12) | lo) >>> 0;
  return { f32: new Float32Array(u32.buffer), u32 };
}
const CLASSES = allFloat32Classes();

/** Doubles that are not float32 values: random magnitudes over the formats' ranges and values a hair off each tie. */
function doubleSamples(): number[] {
  const out: number[] = [];
  let s = 7;
  const rnd = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = 0; i < 200000; i++) out.push((rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 160 - 140) * (1 + rnd()));
  const ties = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6, 464, 448, 2 ** -10, 2 ** -9, 2 ** -127, 1.5 * 2 ** -127, 1.5];
  for (let e = -12; e <= 9; e++) for (let m = 0; m < 16; m++) ties.push((1 + (m + 0.5) / 8) * 2 ** e); // e4m3 midpoints
  for (const t of ties) {
    for (const x of [t, t * (1 + 2 ** -52), t * (1 - 2 ** -53), t * (1 + 2 ** -30), t * (1 - 2 ** -30)]) out.push(x, -x);
  }
  out.push(0, -0, NaN, -NaN, Infinity, -Infinity, Number.MIN_VALUE, -Number.MIN_VALUE, Number.MAX_VALUE);
  return out;
}
const DOUBLES = doubleSamples();

function sameNumber(a: number, b: number, what: string): void {
  if (!Object.is(a, b)) assert.fail(`${what}: fast ${a} vs old ${b}`);
}

function scalarAgrees(name: string, f: (x: number) => number, g: (x: number) => number): void {
  const { f32, u32 } = CLASSES;
  for (let i = 0; i < f32.length; i++) {
    const x = f32[i]!;
    const a = f(x);
    const b = g(x);
    if (a !== b) assert.fail(`${name}(float32 bits 0x${u32[i]!.toString(16)} = ${x}): fast ${a} vs old ${b}`);
  }
  for (const x of DOUBLES) sameNumber(f(x), g(x), `${name}(${x})`);
}

test('scalar encoders: every float32 class and sampled doubles give the old codes', () => {
  scalarAgrees('f32ToE4M3 sat', (x) => fast.f32ToE4M3(x, true), (x) => old.f32ToE4M3(x, true));
  scalarAgrees('f32ToE4M3', (x) => fast.f32ToE4M3(x, false), (x) => old.f32ToE4M3(x, false));
  scalarAgrees('f32ToE5M2 sat', (x) => fast.f32ToE5M2(x, true), (x) => old.f32ToE5M2(x, true));
  scalarAgrees('f32ToE2M1', fast.f32ToE2M1, old.f32ToE2M1);
  scalarAgrees('f32ToBf16Bits', fast.f32ToBf16Bits, old.f32ToBf16Bits);
  scalarAgrees('f32ToF16Bits', fast.f32ToF16Bits, old.f32ToF16Bits);
  for (const r of ['up', 'nearest-even'] as const) {
    for (const sat of [true, false]) scalarAgrees(`f32ToE8M0 ${r} ${sat}`, (x) => fast.f32ToE8M0(x, r, sat), (x) => old.f32ToE8M0(x, r, sat));
  }
});

test('scalar decoders: every code decodes to the same float32 bits', () => {
  const f = new Float32Array(2);
  const u = new Uint32Array(f.buffer);
  const check = (name: string, n: number, a: (c: number) => number, b: (c: number) => number): void => {
    for (let c = 0; c < n; c++) {
      f[0] = a(c);
      f[1] = b(c);
      if (u[0] !== u[1]) assert.fail(`${name}(${c}): fast 0x${u[0]!.toString(16)} vs old 0x${u[1]!.toString(16)}`);
      sameNumber(Number.isNaN(a(c)) ? NaN : a(c), Number.isNaN(b(c)) ? NaN : b(c), `${name}(${c}) as a double`);
    }
  };
  check('e4m3ToF32', 512, fast.e4m3ToF32, old.e4m3ToF32); // 512: codes above 255 are masked the same way
  check('e5m2ToF32', 256, fast.e5m2ToF32, old.e5m2ToF32);
  check('e2m1ToF32', 32, fast.e2m1ToF32, old.e2m1ToF32);
  check('e8m0ToF32', 256, fast.e8m0ToF32, old.e8m0ToF32);
  check('bf16BitsToF32', 65536, fast.bf16BitsToF32, old.bf16BitsToF32);
  check('f16BitsToF32', 65536, fast.f16BitsToF32, old.f16BitsToF32);
  for (let c = 0; c < 256; c++) sameNumber(fast.e8m0ToF32(c), old.e8m0ToF32(c), `e8m0ToF32(${c}) double`);
});

test('bulk encodeFromF32 / decodeToF32 (float8, float16, bfloat16): same bytes as the old loops', () => {
  const { f32 } = CLASSES;
  const f64 = Float64Array.from(DOUBLES);
  for (const dtype of ['float8_e4m3fn', 'float8_e5m2'] as const) {
    for (const sat of [true, false]) {
      for (const src of [f32, f64]) {
        const a = new Uint8Array(src.length);
        const b = new Uint8Array(src.length);
        fast.encodeFromF32(dtype, src, a, sat);
        old.encodeFromF32(dtype, src, b, sat);
        const i = a.findIndex((v, k) => v !== b[k]);
        if (i >= 0) assert.fail(`encodeFromF32 ${dtype} sat=${sat} at ${src[i]}: fast ${a[i]} vs old ${b[i]}`);
      }
    }
    const codes = Uint8Array.from({ length: 256 }, (_, c) => c);
    const a = new Float32Array(256);
    const b = new Float32Array(256);
    fast.decodeToF32(dtype, codes, a);
    old.decodeToF32(dtype, codes, b);
    assert.deepEqual(new Uint32Array(a.buffer), new Uint32Array(b.buffer), `decodeToF32 ${dtype}`);
  }
  for (const dtype of ['float16', 'bfloat16'] as const) {
    for (const src of [f32, f64]) {
      const a = new Uint16Array(src.length);
      const b = new Uint16Array(src.length);
      fast.encodeFromF32(dtype, src, a);
      old.encodeFromF32(dtype, src, b);
      assert.ok(a.every((v, k) => v === b[k]), `encodeFromF32 ${dtype}`);
    }
  }
});

test('packNibbles / unpackNibbles / int4 nibble helpers: same bytes and the same errors', () => {
  let s = 99;
  for (const n of [0, 1, 2, 3, 7, 16, 33, 1000, 4097]) {
    const codes = Uint8Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 28);
    const p = fast.packNibbles(codes);
    assert.deepEqual(p, old.packNibbles(codes), `packNibbles n=${n}`);
    assert.deepEqual(fast.unpackNibbles(p, n), old.unpackNibbles(p, n), `unpackNibbles n=${n}`);
    const noisy = Uint8Array.from({ length: (n + 1) >>> 1 }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24);
    assert.deepEqual(fast.unpackNibbles(noisy, n), old.unpackNibbles(noisy, n), `unpackNibbles of any bytes n=${n}`);
    if (n > 0) {
      for (const bad of [16, 255]) {
        const c = codes.slice();
        c[n - 1] = bad;
        assert.throws(() => fast.packNibbles(c), (e: Error) => {
          assert.throws(() => old.packNibbles(c), { message: e.message });
          return true;
        });
      }
    }
  }
  assert.throws(() => fast.unpackNibbles(new Uint8Array(3), 7), (e: Error) => {
    assert.throws(() => old.unpackNibbles(new Uint8Array(3), 7), { message: e.message });
    return true;
  });
  for (let v = -9; v <= 16; v += 0.5) {
    const a = ((): string | number => { try { return fast.int4ToNibble(v); } catch (e) { return (e as Error).message; } })();
    const b = ((): string | number => { try { return old.int4ToNibble(v); } catch (e) { return (e as Error).message; } })();
    assert.equal(a, b);
    const c = ((): string | number => { try { return fast.nibbleToInt4(v); } catch (e) { return (e as Error).message; } })();
    const d = ((): string | number => { try { return old.nibbleToInt4(v); } catch (e) { return (e as Error).message; } })();
    assert.equal(c, d);
  }
});
