// More formats (src/quant/formats: fp8-block, w4a8, activations, kv-cache): reference vectors,
// first-principles derivations, adversarial inputs, errors.
//
// (1) Reference vectors (shared/data/numerics/reference_vectors.json):
//   - modelopt_qtensor_accuracy "FP8 2D block 2x2": Model Optimizer FP8QTensor with 2x2 blocks on bf16,
//     reproduced bit-exactly with fp8-block arith 'bfloat16', blockSize 2.
//   Skipped: "FP8 2D block 2x2 with padding" (3 columns do not tile: mopt refuses with a RangeError, which is
//   tested instead, since the HF export does not pad); the other entries are covered by formats.test.ts or
//   concern other formats.
// (2) Derivations: scales and codes re-derived from formats.md rules with independent helpers (brute-force
//   nearest e4m3 over the decode table, e2m1 threshold list, explicit half-to-even).
// (3) NaN / inf → RangeError naming the position; bad shapes / amax → RangeError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bf16BitsToF32, e4m3ToF32, f32ToBf16Bits } from '../../src/tensor/codecs.js';
import * as fp8b from '../../src/quant/formats/fp8-block.js';
import * as w4a8 from '../../src/quant/formats/w4a8.js';
import * as act from '../../src/quant/formats/activations.js';
import * as kv from '../../src/quant/formats/kv-cache.js';
import { SHARED_DATA, DATA_SKIP } from '../helpers/paths.js';
import { e4m3Value, isNegative } from '../helpers/e4m3-reference.js';

const f = Math.fround;
const bf16 = (x: number): number => bf16BitsToF32(f32ToBf16Bits(x));
const neg = isNegative;

const e4m3Val = e4m3Value;
/** e2m1 value from formats.md thresholds and ties. */
function e2m1Val(x: number): number {
  const a = Math.abs(x);
  const m = a <= 0.25 ? 0 : a < 0.75 ? 0.5 : a <= 1.25 ? 1 : a < 1.75 ? 1.5 : a <= 2.5 ? 2 : a < 3.5 ? 3 : a <= 5 ? 4 : 6;
  return neg(x) ? -m : m;
}
function rne(t: number): number {
  const fl = Math.floor(t);
  const d = t - fl;
  return d > 0.5 ? fl + 1 : d < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
}
/** deterministic pseudo-random matrix with a few adversarial entries */
function mat(n: number, seed: number, spread = 3): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = f(((s / 2 ** 32) * 2 - 1) * spread ** ((i % 7) - 3));
  }
  return out;
}
const posErr = (re: RegExp) => (e: unknown): boolean => e instanceof RangeError && re.test(e.message);

// ---- fp8-block --------------------------------------------------------------------------------------

test('fp8-block: reference vector modelopt_qtensor_accuracy "FP8 2D block 2x2" (bf16 arith)', { skip: DATA_SKIP }, () => {
  const j = JSON.parse(readFileSync(join(SHARED_DATA, 'numerics', 'reference_vectors.json'), 'utf8')) as {
    modelopt_qtensor_accuracy: { cases: { name: string; input: number[][]; expected: number[][] }[] };
  };
  const c = j.modelopt_qtensor_accuracy.cases.find((k) => k.name === 'FP8 2D block 2x2');
  assert.ok(c);
  const w = Float32Array.from(c.input.flat());
  const y = fp8b.fakeQuantize(w, [2, 4], { blockSize: 2, arith: 'bfloat16' });
  assert.deepEqual(Array.from(y), c.expected.flat().map(bf16));
});

test('fp8-block: per-block scale = block amax/448 (fp32), codes = e4m3(clamp(w/scale))', () => {
  const rows = 8, cols = 12, bs = 4;
  const w = mat(rows * cols, 7);
  w[5] = 0; w[6] = -0; w[13] = 448 * 3; // adversarial: signed zeros, and an outlier at [1, 1] (block (0, 0))
  for (let r = 4; r < 8; r++) for (let c = 8; c < 12; c++) w[r * cols + c] = 0; // all-zero block → scale 1
  const q = fp8b.quantize(w, [rows, cols], { blockSize: bs });
  assert.equal(q.scales.length, (rows / bs) * (cols / bs));
  const y = fp8b.dequantize(q);
  for (let bi = 0; bi < rows / bs; bi++) {
    for (let bj = 0; bj < cols / bs; bj++) {
      let amax = 0;
      for (let r = bi * bs; r < (bi + 1) * bs; r++) for (let c = bj * bs; c < (bj + 1) * bs; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]!));
      const s = amax === 0 ? 1 : f(amax / 448);
      assert.equal(q.scales[bi * (cols / bs) + bj], s);
      for (let r = bi * bs; r < (bi + 1) * bs; r++) {
        for (let c = bj * bs; c < (bj + 1) * bs; c++) {
          const i = r * cols + c;
          const ev = e4m3Val(f(w[i]! / s));
          assert.equal(e4m3ToF32(q.codes[i]!), ev, `code ${r},${c}`);
          assert.ok(Object.is(y[i], f(ev * s)), `deq ${r},${c}`);
        }
      }
    }
  }
  assert.equal(q.scales[1 * 3 + 2], 1);
  // the block max hits 448 exactly (amax/(amax/448) rounds to 448 in fp32 or clamps there)
  assert.equal(Math.abs(e4m3ToF32(q.codes[13]!)), 448);
});

test('fp8-block: default 128x128 blocks, scale shape [out/128, in/128]', () => {
  const w = mat(256 * 384, 3);
  const q = fp8b.quantize(w, [256, 384]);
  assert.equal(q.meta.blockSize, 128);
  assert.equal(q.scales.length, 2 * 3);
});

test('fp8-block: non-dividing shape → RangeError suggesting exclusion; NaN/inf named by position', () => {
  assert.throws(() => fp8b.quantize(new Float32Array(2 * 3), [2, 3], { blockSize: 2 }), posErr(/exclude/));
  assert.throws(() => fp8b.quantize(new Float32Array(128 * 192), [128, 192]), posErr(/exclude/));
  assert.throws(() => fp8b.quantize(new Float32Array(4), [2, 2], { blockSize: 0 }), RangeError);
  const w = new Float32Array(16); w[9] = NaN;
  assert.throws(() => fp8b.quantize(w, [4, 4], { blockSize: 2 }), posErr(/\[2, 1\]/));
  w[9] = -Infinity;
  assert.throws(() => fp8b.quantize(w, [4, 4], { blockSize: 2 }), posErr(/\[2, 1\]/));
});

// ---- w4a8 --------------------------------------------------------------------------------------------

test('w4a8: weight_scale = group amax/7, weight_scale_2 = max |W|/448 (unquantized), packing along out dim, both stages', () => {
  const rows = 4, cols = 256, g = 128;
  const w = mat(rows * cols, 11);
  w[3] = 0.5 * f(w.slice(0, 128).reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 7); // w/scale = 0.5: a half-way case for RNE
  const q = w4a8.quantize(w, [rows, cols]);
  const deq = new Float32Array(rows * cols);
  const codes: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols / g; k++) {
      let amax = 0;
      for (let i = 0; i < g; i++) amax = Math.max(amax, Math.abs(w[r * cols + k * g + i]!));
      const s = f(amax / 7);
      assert.equal(q.scales[r * (cols / g) + k], s);
      for (let i = 0; i < g; i++) {
        const idx = r * cols + k * g + i;
        const c = Math.min(Math.max(rne(f(w[idx]! / s)), -8), 7);
        codes[idx] = c;
        deq[idx] = f(c * s);
      }
    }
  }
  assert.equal(codes[3], 0); // the half-way case went to the even code 0
  // packing: byte[j, i] = q[2j, i] low nibble | q[2j+1, i] high nibble, two's complement
  for (let j = 0; j < rows / 2; j++) {
    for (let i = 0; i < cols; i++) {
      assert.equal(q.codes[j * cols + i], (codes[2 * j * cols + i]! & 0xf) | ((codes[(2 * j + 1) * cols + i]! & 0xf) << 4));
    }
  }
  assert.deepEqual(Array.from(w4a8.int4Stage(q)), Array.from(deq));
  // Model Optimizer calibrates the FP8 stage with quantization off: its amax is max |W|, not max |INT4(W)|
  const amax2 = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const s2 = f(amax2 / 448);
  assert.equal(q.scale2, s2);
  const two = (x: number): number => f(e4m3Val(f(Math.min(Math.max(f(x / s2), -448), 448))) * s2);
  const y = w4a8.fakeQuantize(w, [rows, cols]);
  for (let i = 0; i < y.length; i++) assert.ok(Object.is(y[i], two(deq[i]!)), `fq ${i}`);
  assert.deepEqual(Array.from(w4a8.dequantize(q)), Array.from(y), 'dequantize runs both stages from codes and scales');
  // a fused group's shared amax sets weight_scale_2 (and values beyond it clamp to ±448 · s2)
  const shared = w4a8.quantize(w, [rows, cols], {}, amax2 / 2);
  assert.equal(shared.scale2, f(amax2 / 2 / 448));
});

test('w4a8: errors (odd out dim, non-dividing in dim, NaN position)', () => {
  assert.throws(() => w4a8.quantize(new Float32Array(3 * 128), [3, 128]), RangeError);
  assert.throws(() => w4a8.quantize(new Float32Array(2 * 100), [2, 100]), RangeError);
  const w = new Float32Array(2 * 128); w[130] = Infinity;
  assert.throws(() => w4a8.quantize(w, [2, 128]), posErr(/\[1, 2\]/));
});

// ---- activations -------------------------------------------------------------------------------------

test('activations fp8 static: input_scale = calibrated amax/448; values above amax clamp to ±448·scale', () => {
  const x = mat(4 * 8, 5);
  x[0] = 100; x[1] = -100; // beyond the calibrated amax
  const amax = 3;
  const r = act.fakeQuantize(x, [4, 8], { format: 'fp8', amax });
  const s = f(amax / 448);
  assert.equal(r.inputScale, s);
  for (let i = 0; i < x.length; i++) assert.ok(Object.is(r.y[i], f(e4m3Val(f(x[i]! / s)) * s)), `${i}`);
  assert.equal(r.y[0], f(448 * s));
  assert.equal(r.y[1], -f(448 * s));
});

test('activations fp8 per-token: one scale per row = row amax/448, per call', () => {
  const x = mat(3 * 16, 9);
  for (let c = 0; c < 16; c++) x[16 + c] = 0; // zero token → scale 1
  const r = act.fakeQuantize(x, [3, 16], { format: 'fp8-per-token' });
  assert.equal(r.inputScale, null);
  const sc = r.scales as Float32Array;
  for (let t = 0; t < 3; t++) {
    let amax = 0;
    for (let c = 0; c < 16; c++) amax = Math.max(amax, Math.abs(x[t * 16 + c]!));
    const s = amax === 0 ? 1 : f(amax / 448);
    assert.equal(sc[t], s);
    for (let c = 0; c < 16; c++) assert.ok(Object.is(r.y[t * 16 + c], f(e4m3Val(f(x[t * 16 + c]! / s)) * s)));
  }
});

test('activations int8 static: input_scale = amax/127, half-to-even, clamp [-128, 127]', () => {
  const amax = 2.54;
  const s = f(amax / 127);
  const x = Float32Array.from([0.5 * s, 1.5 * s, 2.5 * s, -0.5 * s, 10, -10, 0, -0, 126.5 * s, 0.3]);
  const r = act.fakeQuantize(x, [1, x.length], { format: 'int8', amax });
  assert.equal(r.inputScale, s);
  for (let i = 0; i < x.length; i++) {
    const t = f(x[i]! / s);
    const q = Math.min(Math.max(rne(t), -128), 127);
    // IEEE round-to-integral keeps the sign: -0.5 and -0 round to -0 (as torch.round does)
    assert.equal(r.y[i], f((q === 0 && neg(t) ? -0 : q) * s), `${i}`);
  }
  assert.equal(r.y[4], f(127 * s));
  assert.equal(r.y[5], f(-128 * s));
});

test('activations nvfp4: input_scale = amax/2688, e4m3 block scales from the block amax per call', () => {
  const rows = 2, cols = 48;
  const x = mat(rows * cols, 21);
  for (let i = 16; i < 32; i++) x[i] = 0; // zero block
  x[40] = 1e4; // a block far louder than the calibration → block scale saturates at 448, elements at ±6
  const amax = 5;
  const r = act.fakeQuantize(x, [rows, cols], { format: 'nvfp4', amax });
  const s2 = f(amax / 2688);
  assert.equal(r.inputScale, s2);
  const sc = r.scales as Uint8Array;
  for (let b = 0; b < x.length / 16; b++) {
    let bam = 0;
    for (let i = b * 16; i < (b + 1) * 16; i++) bam = Math.max(bam, Math.abs(x[i]!));
    let sb = f(bam / f(6 * s2));
    if (sb === 0) sb = 1;
    sb = Math.min(Math.max(sb, 2 ** -9), 448);
    const sbv = e4m3Val(sb);
    assert.equal(e4m3ToF32(sc[b]!), sbv, `block ${b}`);
    const div = f(sbv * s2);
    for (let i = b * 16; i < (b + 1) * 16; i++) assert.ok(Object.is(r.y[i], f(e2m1Val(f(x[i]! / div)) * div)), `${i}`);
  }
  assert.equal(e4m3ToF32(sc[2]!), 448);
  assert.equal(r.y[40], f(6 * f(448 * s2)));
});

test('activations mxfp8 / mxfp4 dynamic: E8M0 ceil rule per block of 32', () => {
  const x = mat(2 * 64, 4);
  for (const format of ['mxfp8', 'mxfp4'] as const) {
    const emax = format === 'mxfp8' ? 448 : 6;
    const r = act.fakeQuantize(x, [2, 64], { format });
    assert.equal(r.inputScale, null);
    const sc = r.scales as Uint8Array;
    for (let b = 0; b < 4; b++) {
      let bam = 0;
      for (let i = b * 32; i < (b + 1) * 32; i++) bam = Math.max(bam, Math.abs(x[i]!));
      const e = Math.min(Math.max(Math.ceil(Math.log2(f(bam / emax))), -127), 127);
      assert.equal(sc[b], e + 127, `${format} block ${b}`);
      for (let i = b * 32; i < (b + 1) * 32; i++) {
        const v = format === 'mxfp8' ? e4m3Val(x[i]! / 2 ** e) : e2m1Val(x[i]! / 2 ** e);
        assert.ok(Object.is(r.y[i], f(v * 2 ** e)), `${format} ${i}`);
      }
    }
  }
});

test('activations: NaN / inf position, bad amax, non-dividing blocks → RangeError', () => {
  const x = new Float32Array(32); x[17] = NaN;
  for (const calib of [{ format: 'fp8', amax: 1 }, { format: 'fp8-per-token' }, { format: 'int8', amax: 1 }, { format: 'nvfp4', amax: 1 }, { format: 'mxfp8' }] as const) {
    assert.throws(() => act.fakeQuantize(x, [1, 32], calib), posErr(/\[0, 17\]/), calib.format);
  }
  const ok = new Float32Array(32);
  for (const amax of [NaN, Infinity, -1]) {
    assert.throws(() => act.fakeQuantize(ok, [1, 32], { format: 'fp8', amax }), posErr(/amax/));
    assert.throws(() => act.fakeQuantize(ok, [1, 32], { format: 'nvfp4', amax }), posErr(/amax/));
  }
  assert.throws(() => act.fakeQuantize(new Float32Array(24), [1, 24], { format: 'nvfp4', amax: 1 }), RangeError);
  assert.throws(() => act.fakeQuantize(new Float32Array(48), [1, 48], { format: 'mxfp4' }), RangeError);
  // zero calibrated amax: scale 1, everything quantizes against it (no 0/0)
  const z = act.fakeQuantize(Float32Array.from([0.3, -0.3]), [1, 2], { format: 'fp8', amax: 0 });
  assert.equal(z.inputScale, 1);
  assert.deepEqual(Array.from(z.y), [e4m3Val(f(0.3)), -e4m3Val(f(0.3))]);
});

// ---- kv cache ----------------------------------------------------------------------------------------

test('kv-cache: k_scale / v_scale = amax/448 for FP8 and NVFP4; tensors fake-quantized accordingly', () => {
  const shape = [4, 32] as const;
  const k = mat(128, 31), v = mat(128, 32, 2);
  const kAmax = 6, vAmax = 2.5;
  const r8 = kv.fakeQuantize('fp8', k, v, shape, { kAmax, vAmax });
  assert.equal(r8.kScale, f(kAmax / 448));
  assert.equal(r8.vScale, f(vAmax / 448));
  for (let i = 0; i < 128; i++) {
    assert.ok(Object.is(r8.k[i], f(e4m3Val(f(k[i]! / r8.kScale)) * r8.kScale)));
    assert.ok(Object.is(r8.v[i], f(e4m3Val(f(v[i]! / r8.vScale)) * r8.vScale)));
  }
  const r4 = kv.fakeQuantize('nvfp4', k, v, shape, { kAmax, vAmax });
  assert.equal(r4.kScale, f(kAmax / 448)); // exported scale is amax/448 even for NVFP4
  assert.equal(r4.vScale, f(vAmax / 448));
  assert.deepEqual(Array.from(r4.k), Array.from(act.fakeQuantize(k, shape, { format: 'nvfp4', amax: kAmax }).y));
  assert.deepEqual(Array.from(r4.v), Array.from(act.fakeQuantize(v, shape, { format: 'nvfp4', amax: vAmax }).y));
  const bad = new Float32Array(128); bad[33] = Infinity;
  assert.throws(() => kv.fakeQuantize('fp8', k, bad, shape, { kAmax, vAmax }), posErr(/\[1, 1\]/));
  assert.throws(() => kv.fakeQuantize('nvfp4', k, v, shape, { kAmax: NaN, vAmax }), posErr(/amax/));
});
