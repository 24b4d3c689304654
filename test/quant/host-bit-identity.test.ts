// The fast host weight paths of every export / load format against the pre-speedup implementation kept in
// test/helpers/slow-reference as the oracle: quantize (codes, scales, global scales, packed bytes), dequantize
// (float32 bits), fake-quantize, int4Values, W4A8's stages and the activation quantizers must give identical
// bits, and bad inputs the same error messages.
//
// Inputs, per format and per shape:
// - gaussian N(0, 0.02) weights with outliers, like a trained layer;
// - log-uniform magnitudes over 2^-149 .. 2^100 with random signs (denormals, scale under/overflow, quotients
//   that saturate or flush to zero);
// - zeros: an all-zero matrix, -0 entries, all-zero and all-equal blocks;
// - ties: every block holds its format's bound (or the options fix the amax), so the effective scale is a
//   power of two and the other entries sit exactly on every rounding midpoint of the element format, or one
//   float32 ulp either side of it;
// - options: tensorAmax / globalAmax / blockAmax / stage2Amax overrides (including zero and tiny ones),
//   bf16 arithmetic for FP8, block sizes 32 and 128 for FP8 blocks, every INT4 group size;
// - errors: NaN / inf entries, shapes that do not tile, amax that underflows float32.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fp8 from '../../src/quant/formats/fp8.js';
import * as fp8Block from '../../src/quant/formats/fp8-block.js';
import * as int8 from '../../src/quant/formats/int8.js';
import * as int4 from '../../src/quant/formats/int4.js';
import * as w4a8 from '../../src/quant/formats/w4a8.js';
import * as nvfp4 from '../../src/quant/formats/nvfp4.js';
import * as mx from '../../src/quant/formats/mx.js';
import * as act from '../../src/quant/formats/activations.js';
import * as oFp8 from '../helpers/slow-reference/fp8.js';
import * as oFp8Block from '../helpers/slow-reference/fp8-block.js';
import * as oInt8 from '../helpers/slow-reference/int8.js';
import * as oInt4 from '../helpers/slow-reference/int4.js';
import * as oW4a8 from '../helpers/slow-reference/w4a8.js';
import * as oNvfp4 from '../helpers/slow-reference/nvfp4.js';
import * as oMx from '../helpers/slow-reference/mx.js';
import * as oAct from '../helpers/slow-reference/activations.js';
import { e4m3ToF32, f32ToE2M1, f32ToE4M3 } from '../helpers/slow-reference/codecs.js';
import { roundHalfEven } from '../helpers/slow-reference/common.js';
import { e2m1, e4m3Sat, roundClamp } from '../../src/quant/formats/kernels.js';
import type { Shape2 } from '../../src/quant/formats/common.js';

// ---------------------------------------------------------------------------------------------------
// Comparing results bit by bit

type Outcome = { ok: unknown } | { err: string };
function run(fn: () => unknown): Outcome {
  try {
    return { ok: fn() };
  } catch (e) {
    return { err: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * `anyNaN`: float32 NaNs match whatever their sign. Only for inputs whose NaN sign the old code left to V8:
 * Math.max(NaN, x) returns a NaN whose sign bit depends on whether the caller is interpreted or optimized,
 * and the old FP8 clamp passed that sign on into the e4m3 NaN code (0x7f or 0xff).
 */
function sameBits(a: unknown, b: unknown, path: string, anyNaN = false): void {
  if (anyNaN && a instanceof Float32Array && b instanceof Float32Array) {
    assert.equal(a.length, b.length, `${path}: length`);
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== y[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) assert.fail(`${path}: element ${i} differs (fast ${a[i]} vs old ${b[i]})`);
    }
  } else if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    assert.equal(a.constructor.name, b.constructor.name, `${path}: array type`);
    const x = bytesOf(a);
    const y = bytesOf(b);
    assert.equal(x.length, y.length, `${path}: length`);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${path}: byte ${i} differs (fast ${x[i]} vs old ${y[i]})`);
  } else if (typeof a === 'number' && typeof b === 'number') {
    if (!Object.is(a, b)) assert.fail(`${path}: fast ${a} vs old ${b}`);
  } else if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort();
    assert.deepEqual(ka, Object.keys(b).sort(), `${path}: keys`);
    for (const k of ka) sameBits((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
  } else {
    assert.deepEqual(a, b, path);
  }
}

function agree(what: string, fast: () => unknown, old: () => unknown, anyNaN = false): void {
  const a = run(fast);
  const b = run(old);
  if ('err' in a || 'err' in b) assert.deepEqual(a, b, `${what}: errors`);
  else sameBits(a.ok, b.ok, what, anyNaN);
}

// ---------------------------------------------------------------------------------------------------
// Inputs

let seed = 1;
const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const f32 = Math.fround;

function gaussian(n: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()) * 0.02;
  for (let i = 0; i < n; i += 97) w[i] = (rnd() < 0.5 ? -1 : 1) * 0.5;
  return w;
}

function logUniform(n: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 249 - 149);
  return w;
}

/** Zeros, -0, all-zero and all-equal blocks of `block` along the rows, the rest gaussian. */
function zerosAndFlat(n: number, block: number): Float32Array {
  const w = gaussian(n);
  for (let b = 0; b < n / block; b++) {
    const kind = b % 5;
    const v = kind === 0 ? 0 : kind === 1 ? -0 : kind === 2 ? f32(rnd() - 0.5) : NaN;
    for (let i = b * block; i < (b + 1) * block; i++) {
      if (!Number.isNaN(v)) w[i] = v;
      else if (i % 3 === 0) w[i] = rnd() < 0.5 ? 0 : -0;
    }
  }
  return w;
}

/** e4m3 midpoints between consecutive magnitudes (464 included), the magnitudes themselves, and beyond 448. */
const E4M3_POINTS: number[] = (() => {
  const out: number[] = [];
  for (let c = 0; c < 126; c++) out.push(e4m3ToF32(c), (e4m3ToF32(c) + e4m3ToF32(c + 1)) / 2);
  out.push(448, 464, 480, 1e6);
  return out;
})();
const E2M1_POINTS = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 6.5];
const INT_POINTS = Array.from({ length: 36 }, (_, k) => (k - 18) / 2); // every integer and half in [-9, 8.5]

/** One float32 ulp up or down, or none. */
function jitter(x: number): number {
  const r = rnd();
  if (r < 0.6 || x === 0) return x;
  const b = new Float32Array([x]);
  const u = new Uint32Array(b.buffer);
  u[0] = r < 0.8 ? u[0]! + 1 : u[0]! - 1;
  return b[0]!;
}

/**
 * Every run of `block` along a row starts with ±bound·2^k (so the block amax is that and the scale comes out a
 * power of two times the format's unit), the rest are ±point·2^k·unit: exact rounding midpoints after the
 * division, some nudged one ulp. `unitOf(k)` is the effective scale the format derives for block amax bound·2^k.
 */
function ties(n: number, block: number, bound: number, points: readonly number[], unit: number, kRange = 6): Float32Array {
  const w = new Float32Array(n);
  for (let b = 0; b < n / block; b++) {
    const p2 = 2 ** (Math.floor(rnd() * (2 * kRange + 1)) - kRange);
    w[b * block] = (rnd() < 0.5 ? -1 : 1) * bound * p2;
    for (let i = b * block + 1; i < (b + 1) * block; i++) w[i] = jitter((rnd() < 0.5 ? -1 : 1) * pick(points) * p2 * unit);
  }
  return w;
}

const SHAPES: Shape2[] = [[2, 32], [4, 128], [6, 256], [128, 256], [256, 384]];
const inputs = (shape: Shape2, block: number): [string, Float32Array][] => {
  const n = shape[0] * shape[1];
  return [['gaussian', gaussian(n)], ['log-uniform', logUniform(n)], ['zeros', zerosAndFlat(n, block)], ['zero matrix', new Float32Array(n)]];
};
const tag = (shape: Shape2, name: string): string => `[${shape[0]}, ${shape[1]}] ${name}`;

// ---------------------------------------------------------------------------------------------------

test('kernels: e4m3Sat, e2m1 and roundClamp on every float32 class (all 2^20 high-bit patterns x sticky low bits)', () => {
  // The low 12 bits of a float32 only ever act as sticky bits for e4m3 (3 mantissa bits) and for rounding to
  // an integer below 2^11, so these inputs cover every rounding case, every exponent and denormals.
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const i8 = new Int8Array(2);
  for (let hi = 0; hi < 1 << 20; hi++) {
    for (const lo of [0, 1, 0x7ff, 0x800, 0xfff]) {
      u[0] = ((hi << 12) | lo) >>> 0;
      const x = f[0]!;
      if (e2m1(u[0]!) !== f32ToE2M1(x)) assert.fail(`e2m1(0x${u[0]!.toString(16)} = ${x}): ${e2m1(u[0]!)} vs ${f32ToE2M1(x)}`);
      if (Number.isNaN(x)) continue; // the old clamp's NaN sign was V8's choice (see sameBits)
      const old = f32ToE4M3(Math.min(Math.max(x, -448), 448), true);
      if (e4m3Sat(u[0]!, x) !== old || old !== f32ToE4M3(x, true)) assert.fail(`e4m3Sat(0x${u[0]!.toString(16)} = ${x}): ${e4m3Sat(u[0]!, x)} vs ${old}`);
      i8[0] = roundClamp(x, -128, 127);
      i8[1] = Math.min(Math.max(roundHalfEven(x), -128), 127);
      if (i8[0] !== i8[1]) assert.fail(`roundClamp(${x}): ${i8[0]} vs ${i8[1]}`);
    }
  }
});

test('fp8 per-tensor / per-channel (float32 and bfloat16 arithmetic) and fakeQuantizeWithScale', () => {
  for (const shape of SHAPES) {
    const n = shape[0] * shape[1];
    const cases = [...inputs(shape, shape[1]), ['ties', ties(n, shape[1], 448, E4M3_POINTS, 1)] as [string, Float32Array]];
    for (const [name, w] of cases) {
      for (const opts of [{}, { granularity: 'channel' as const }, { arith: 'bfloat16' as const }, { granularity: 'channel' as const, arith: 'bfloat16' as const },
        { tensorAmax: 448 }, { tensorAmax: 0 }, { tensorAmax: 1e-3 }, { tensorAmax: 1e-43 }, { tensorAmax: 3, arith: 'bfloat16' as const }]) {
        const what = `fp8 ${tag(shape, name)} ${JSON.stringify(opts)}`;
        agree(`${what} quantize`, () => fp8.quantize(w, shape, opts), () => oFp8.quantize(w, shape, opts));
        const q = run(() => oFp8.quantize(w, shape, opts));
        if ('ok' in q) agree(`${what} dequantize`, () => fp8.dequantize(q.ok as fp8.Fp8Quantized), () => oFp8.dequantize(q.ok as oFp8.Fp8Quantized));
      }
      for (const s of [1, f32(0.5 / 448), 2 ** -140, 3e30, f32(Math.PI)]) {
        agree(`fp8.fakeQuantizeWithScale ${tag(shape, name)} ${s}`, () => fp8.fakeQuantizeWithScale(w, s), () => oFp8.fakeQuantizeWithScale(w, s));
      }
    }
  }
  // Loaded checkpoints may hold any byte, NaN codes included.
  const codes = Uint8Array.from({ length: 512 }, (_, i) => i & 0xff);
  for (const granularity of ['tensor', 'channel'] as const) {
    for (const arith of ['float32', 'bfloat16'] as const) {
      const q: fp8.Fp8Quantized = { codes, scales: granularity === 'tensor' ? new Float32Array([f32(0.3)]) : new Float32Array([f32(0.3), 2 ** -130]), meta: { format: 'fp8', granularity, arith, shape: [2, 256] } };
      agree(`fp8 dequantize every byte ${granularity} ${arith}`, () => fp8.dequantize(q), () => oFp8.dequantize(q));
    }
  }
});

test('fp8 2-D blocks', () => {
  for (const shape of [[128, 256], [256, 384], [64, 32]] as Shape2[]) {
    const n = shape[0] * shape[1];
    for (const [name, w] of [...inputs(shape, 32), ['ties', ties(n, 32, 448, E4M3_POINTS, 1, 0)] as [string, Float32Array]]) {
      for (const opts of [{}, { blockSize: 32 }, { blockSize: 32, arith: 'bfloat16' as const }, { arith: 'bfloat16' as const }, { blockSize: 0 }]) {
        const what = `fp8-block ${tag(shape, name)} ${JSON.stringify(opts)}`;
        agree(`${what} quantize`, () => fp8Block.quantize(w, shape, opts), () => oFp8Block.quantize(w, shape, opts));
        const q = run(() => oFp8Block.quantize(w, shape, opts));
        if ('ok' in q) agree(`${what} dequantize`, () => fp8Block.dequantize(q.ok as fp8Block.Fp8BlockQuantized), () => oFp8Block.dequantize(q.ok as oFp8Block.Fp8BlockQuantized));
      }
    }
  }
});

test('int8 per-channel', () => {
  for (const shape of SHAPES) {
    const n = shape[0] * shape[1];
    for (const [name, w] of [...inputs(shape, shape[1]), ['ties', ties(n, shape[1], 127, INT_POINTS.map((x) => x * 14), 1, 0)] as [string, Float32Array]]) {
      const what = `int8 ${tag(shape, name)}`;
      agree(`${what} quantize`, () => int8.quantize(w, shape), () => oInt8.quantize(w, shape));
      const q = run(() => oInt8.quantize(w, shape));
      if ('ok' in q) agree(`${what} dequantize`, () => int8.dequantize(q.ok as int8.Int8Quantized), () => oInt8.dequantize(q.ok as oInt8.Int8Quantized));
    }
  }
});

/** blockAmax variants: own-ish (random around the gaussian's), zero, tiny, negative and NaN entries. */
function blockAmaxes(nb: number): [string, Float32Array][] {
  const around = Float32Array.from({ length: nb }, () => rnd() * 0.6);
  const odd = Float32Array.from({ length: nb }, (_, i) => [0, 1e-44, -0.1, NaN, 7, 2688, 1e30][i % 7]!);
  return [['random', around], ['odd', odd]];
}

test('int4 groups (every group size, static block amax) and W4A8 stages', () => {
  for (const shape of SHAPES) {
    const n = shape[0] * shape[1];
    for (const g of [32, 64, 128] as const) {
      if (shape[1] % g !== 0) continue;
      const cases = [...inputs(shape, g), ['ties', ties(n, g, 7, INT_POINTS, 1)] as [string, Float32Array]];
      for (const [name, w] of cases) {
        const amaxes: [string, Float32Array | undefined][] = [['own', undefined], ...blockAmaxes(n / g)];
        for (const [an, blockAmax] of amaxes) {
          const opts = blockAmax ? { groupSize: g, blockAmax } : { groupSize: g };
          const what = `int4 g${g} ${tag(shape, name)} amax ${an}`;
          agree(`${what} quantize`, () => int4.quantize(w, shape, opts), () => oInt4.quantize(w, shape, opts));
          const q = run(() => oInt4.quantize(w, shape, opts));
          if ('ok' in q) {
            const qq = q.ok as oInt4.Int4Quantized;
            agree(`${what} dequantize`, () => int4.dequantize(qq), () => oInt4.dequantize(qq));
            agree(`${what} int4Values`, () => int4.int4Values(qq), () => oInt4.int4Values(qq));
          }
        }
        for (const stage2 of [undefined, 0, 1e-3, 5, 1e-43]) {
          const what = `w4a8 g${g} ${tag(shape, name)} stage2 ${stage2}`;
          agree(`${what} quantize`, () => w4a8.quantize(w, shape, { groupSize: g }, stage2), () => oW4a8.quantize(w, shape, { groupSize: g }, stage2));
          const q = run(() => oW4a8.quantize(w, shape, { groupSize: g }, stage2));
          if ('ok' in q) {
            const qq = q.ok as oW4a8.W4a8Quantized;
            agree(`${what} int4Stage`, () => w4a8.int4Stage(qq), () => oW4a8.int4Stage(qq));
            agree(`${what} dequantize`, () => w4a8.dequantize(qq), () => oW4a8.dequantize(qq));
          }
        }
      }
    }
  }
  // Loaded checkpoints: any byte, odd scales.
  const codes = Uint8Array.from({ length: 256 * 2 }, (_, i) => (i * 37) & 0xff);
  const scales = Float32Array.from({ length: 4 * 4 }, (_, i) => [f32(0.01), 0, -1, 2 ** -140, 1e30, NaN][i % 6]!);
  const q4: int4.Int4Quantized = { codes, scales, meta: { format: 'int4', groupSize: 32, shape: [4, 128] } };
  agree('int4 dequantize of any bytes', () => int4.dequantize(q4), () => oInt4.dequantize(q4));
  for (const scale2 of [f32(0.001), 1, 2 ** -140]) {
    const qa: w4a8.W4a8Quantized = { codes, scales, scale2, meta: { format: 'w4a8', groupSize: 32, shape: [4, 128] } };
    agree(`w4a8 dequantize of any bytes, scale2 ${scale2}`, () => w4a8.dequantize(qa), () => oW4a8.dequantize(qa), true); // NaN scales
  }
});

test('nvfp4 (global and static block amax)', () => {
  for (const shape of SHAPES) {
    const n = shape[0] * shape[1];
    const nb = n / 16;
    // globalAmax 2688 makes s2 = 1; block amax 6·2^k makes the e4m3 block scale 2^k exactly (k in [-9, 8]).
    const tieAmax = Float32Array.from({ length: nb }, () => 6 * 2 ** (Math.floor(rnd() * 18) - 9));
    const tieW = new Float32Array(n);
    for (let b = 0; b < nb; b++) for (let i = 0; i < 16; i++) tieW[b * 16 + i] = jitter((rnd() < 0.5 ? -1 : 1) * pick(E2M1_POINTS) * (tieAmax[b]! / 6));
    const cases: [string, Float32Array, number | undefined, Float32Array | undefined][] = [
      ...inputs(shape, 16).map(([name, w]): [string, Float32Array, undefined, undefined] => [name, w, undefined, undefined]),
      ['ties', tieW, 2688, tieAmax],
      ['ties own amax', ties(n, 16, 6, E2M1_POINTS, 1, 4), undefined, undefined],
      ['gaussian, tiny global', gaussian(n), 1e-6, undefined],
      ['gaussian, global 0', gaussian(n), 0, undefined],
      ['gaussian, underflowing divisor', gaussian(n), 1e-42, undefined],
      // no NaN block amax here: the old code's e4m3 code for it had a tier-dependent sign (see sameBits)
      ['gaussian, odd block amax', gaussian(n), undefined, blockAmaxes(nb)[1]![1].map((v) => (Number.isNaN(v) ? 1e-40 : v))],
      ['denormal global, tiny blocks', Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? 1e-45 : -3e-45)), 2688 * 2 ** -149, undefined],
      ['gaussian, random block amax', gaussian(n), 0.5, blockAmaxes(nb)[0]![1]],
    ];
    for (const [name, w, ga, ba] of cases) {
      const what = `nvfp4 ${tag(shape, name)}`;
      agree(`${what} quantize`, () => nvfp4.quantize(w, shape, ga, ba), () => oNvfp4.quantize(w, shape, ga, ba));
      const q = run(() => oNvfp4.quantize(w, shape, ga, ba));
      if ('ok' in q) agree(`${what} dequantize`, () => nvfp4.dequantize(q.ok as nvfp4.Nvfp4Quantized), () => oNvfp4.dequantize(q.ok as oNvfp4.Nvfp4Quantized));
      agree(`${what} fakeQuantize`, () => nvfp4.fakeQuantize(w, shape, ga), () => oNvfp4.fakeQuantize(w, shape, ga));
    }
  }
  const codes = Uint8Array.from({ length: 64 }, (_, i) => (i * 53) & 0xff);
  const scales = Uint8Array.from({ length: 8 }, (_, i) => [0, 0x7e, 0x7f, 0x80, 0xff, 1, 0x38, 0xb8][i]!);
  for (const scale2 of [1, f32(1 / 2688), 2 ** -149]) {
    const q: nvfp4.Nvfp4Quantized = { codes, scales, scale2, meta: { format: 'nvfp4', blockSize: 16, shape: [2, 64] } };
    agree(`nvfp4 dequantize of any bytes, scale2 ${scale2}`, () => nvfp4.dequantize(q), () => oNvfp4.dequantize(q));
  }
});

test('mxfp8 / mxfp4', () => {
  for (const element of ['mxfp8', 'mxfp4'] as const) {
    const [bound, points] = element === 'mxfp8' ? [448, E4M3_POINTS] : [6, E2M1_POINTS];
    for (const shape of SHAPES) {
      const n = shape[0] * shape[1];
      const cases: [string, Float32Array][] = [
        ...inputs(shape, 32),
        ['ties', ties(n, 32, bound, points, 1, 20)],
        ['ties, tiny', ties(n, 32, bound, points, 2 ** -130, 0)],
      ];
      for (const [name, w] of cases) {
        const what = `${element} ${tag(shape, name)}`;
        agree(`${what} quantize`, () => mx.quantize(w, shape, { element }), () => oMx.quantize(w, shape, { element }));
        const q = run(() => oMx.quantize(w, shape, { element }));
        if ('ok' in q) agree(`${what} dequantize`, () => mx.dequantize(q.ok as mx.MxQuantized), () => oMx.dequantize(q.ok as oMx.MxQuantized));
      }
    }
    const codes = Uint8Array.from({ length: element === 'mxfp8' ? 256 : 128 }, (_, i) => (i * 29) & 0xff);
    const scales = Uint8Array.from({ length: 8 }, (_, i) => [0, 1, 127, 254, 255, 100, 200, 3][i]!);
    const q: mx.MxQuantized = { codes, scales, meta: { format: element, blockSize: 32, shape: [1, 256] } };
    agree(`${element} dequantize of any bytes`, () => mx.dequantize(q), () => oMx.dequantize(q));
  }
  for (let v = 0; v < 2 ** -120; v += 2 ** -135) agree(`ceilScaleCode(${v})`, () => mx.ceilScaleCode(v), () => oMx.ceilScaleCode(v));
  for (const v of [0, 2 ** -127, 2 ** -126, 1, 1.5, 2, 2 ** 127, 2 ** 128, 3e38, Infinity]) agree(`ceilScaleCode(${v})`, () => mx.ceilScaleCode(v), () => oMx.ceilScaleCode(v));
});

test('activation quantizers', () => {
  for (const shape of [[3, 32], [16, 256], [64, 384]] as Shape2[]) {
    for (const [name, x] of inputs(shape, 16)) {
      const calibs: act.ActCalib[] = [
        { format: 'fp8', amax: 0.3 }, { format: 'fp8', amax: 0 }, { format: 'fp8-per-token' }, { format: 'int8', amax: 0.1 },
        { format: 'nvfp4', amax: 0.4 }, { format: 'nvfp4', amax: 1e-30 }, { format: 'mxfp8' }, { format: 'mxfp4' }, { format: 'int8', amax: NaN },
      ];
      for (const calib of calibs) {
        agree(`activations ${tag(shape, name)} ${JSON.stringify(calib)}`, () => act.fakeQuantize(x, shape, calib), () => oAct.fakeQuantize(x, shape, calib));
      }
    }
  }
});

test('bad inputs: the same errors', () => {
  const shape: Shape2 = [4, 128];
  const bad = [NaN, Infinity, -Infinity];
  for (const v of bad) {
    const w = gaussian(512);
    w[300] = v;
    agree(`fp8 ${v}`, () => fp8.quantize(w, shape), () => oFp8.quantize(w, shape));
    agree(`int8 ${v}`, () => int8.quantize(w, shape), () => oInt8.quantize(w, shape));
    agree(`int4 ${v}`, () => int4.quantize(w, shape), () => oInt4.quantize(w, shape));
    agree(`nvfp4 ${v}`, () => nvfp4.quantize(w, shape), () => oNvfp4.quantize(w, shape));
    agree(`mxfp4 ${v}`, () => mx.quantize(w, shape, { element: 'mxfp4' }), () => oMx.quantize(w, shape, { element: 'mxfp4' }));
  }
  const tiny = new Float32Array(512).fill(1e-45);
  agree('fp8 underflow', () => fp8.quantize(tiny, shape), () => oFp8.quantize(tiny, shape));
  agree('int4 underflow', () => int4.quantize(tiny, shape), () => oInt4.quantize(tiny, shape));
  agree('int8 underflow', () => int8.quantize(tiny, shape), () => oInt8.quantize(tiny, shape));
  agree('nvfp4 underflow', () => nvfp4.quantize(tiny, shape), () => oNvfp4.quantize(tiny, shape));
  agree('int4 odd rows', () => int4.quantize(gaussian(384), [3, 128]), () => oInt4.quantize(gaussian(384), [3, 128]));
  agree('fp8-block no tile', () => fp8Block.quantize(gaussian(512), shape), () => oFp8Block.quantize(gaussian(512), shape));
  agree('nvfp4 bad global', () => nvfp4.quantize(gaussian(512), shape, -1), () => oNvfp4.quantize(gaussian(512), shape, -1));
});
