// Backend conformance: the forward value of every kernel, on every backend under test and every float
// dtype, against naive float64 references written here (plain loops over JS arrays). Nothing from src/
// computes an expected value except the dtype rounding codecs and the random stream's definition
// (uniformAt / normalAt, the host-side spec every backend must reproduce). Inputs are strided views:
// transposes, slices with offsets, stride-0 broadcasts, ranks 0..4, size-1 dims, negative axes.

import assert from 'node:assert/strict';
import { BINARY_OPS, COMPARE_OPS, UNARY_OPS, type BinaryOp, type CompareOp, type UnaryOp } from '../../src/backend/backend.js';
import * as T from '../../src/tensor/index.js';
import type { DType, Tensor } from '../../src/tensor/index.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/tensor/codecs.js';
import { normalAt, Rng, uniformAt } from '../../src/tensor/random.js';
import { forEachBackend, type BackendUnderTest } from '../helpers/backends.js';

type FloatDType = 'float64' | 'float32' | 'bfloat16' | 'float16';

/**
 * Tolerances, per dtype.
 * ew: one elementwise op / data movement on inputs exact in the dtype, against the float64 result rounded
 *     to the dtype: |got - want| <= rel*|want| + abs, or at most `ulps` units in the last place of the
 *     dtype (half types: a device computing in float32 may round twice). float32 rel 1e-6 is ~8 ulp,
 *     room for a device's exp/log/tanh (a few ulp); the CPU reference rounds once and is exact.
 * acc: sums, means, matmul, scatterAdd, softmax, normal draws against an unrounded float64 reference:
 *     |got - want| <= acc * scale, scale being the sum of |terms| (sums, matmul) or stated at the check.
 */
const TOL: Record<FloatDType, { ew: { rel: number; abs: number } | { ulps: number }; acc: number }> = {
  float64: { ew: { rel: 1e-12, abs: 1e-300 }, acc: 1e-12 },
  float32: { ew: { rel: 1e-6, abs: 1e-30 }, acc: 1e-5 },
  bfloat16: { ew: { ulps: 1 }, acc: 1e-2 },
  float16: { ew: { ulps: 1 }, acc: 1e-2 },
};

/** float64 only where the backend is the CPU (the CUDA backend states per-op dtype support itself). */
const dtypesFor = (name: string): FloatDType[] =>
  name === 'cpu' ? ['float32', 'bfloat16', 'float16', 'float64'] : ['float32', 'bfloat16', 'float16'];

function roundTo(dtype: DType, x: number): number {
  switch (dtype) {
    case 'float32': return Math.fround(x);
    case 'bfloat16': return bf16BitsToF32(f32ToBf16Bits(x));
    case 'float16': return f16BitsToF32(f32ToF16Bits(x));
    case 'int32': case 'int64': return Math.trunc(x);
    case 'bool': return x !== 0 ? 1 : 0;
    default: return x;
  }
}

function ulpDistance(dtype: 'bfloat16' | 'float16', a: number, b: number): number {
  const key = (x: number): number => {
    const bits = dtype === 'bfloat16' ? f32ToBf16Bits(x) : f32ToF16Bits(x);
    return bits & 0x8000 ? -(bits & 0x7fff) : bits;
  };
  return Math.abs(key(a) - key(b));
}

// ---- naive reference arrays (row-major, float64) ----------------------------------------------------

interface Arr { shape: number[]; data: number[] }
const numelOf = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const axisOf = (a: number, rank: number): number => (a < 0 ? a + rank : a);

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}
function at(a: Arr, idx: readonly number[]): number {
  let o = 0;
  for (let d = 0; d < a.shape.length; d++) o = o * a.shape[d] + idx[d];
  return a.data[o];
}
function build(shape: readonly number[], f: (idx: number[]) => number): Arr {
  const data: number[] = [];
  for (let i = 0; i < numelOf(shape); i++) data.push(f(unravel(i, shape)));
  return { shape: [...shape], data };
}
function rPermute(a: Arr, axes: readonly number[]): Arr {
  const ax = axes.map((x) => axisOf(x, a.shape.length));
  return build(ax.map((x) => a.shape[x]), (idx) => {
    const src = new Array<number>(ax.length);
    ax.forEach((x, i) => (src[x] = idx[i]));
    return at(a, src);
  });
}
function rSlice(a: Arr, axis: number, start: number, end: number): Arr {
  const ax = axisOf(axis, a.shape.length);
  const n = a.shape[ax];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end < 0 ? end + n : end, s), n);
  const shape = [...a.shape];
  shape[ax] = e - s;
  return build(shape, (idx) => at(a, idx.map((v, d) => (d === ax ? v + s : v))));
}
/** the position in `a` read by position idx of a broadcast result */
const bIdx = (a: Arr, idx: readonly number[]): number[] => a.shape.map((d, i) => (d === 1 ? 0 : idx[i + idx.length - a.shape.length]));
const rExpand = (a: Arr, shape: readonly number[]): Arr => build(shape, (idx) => at(a, bIdx(a, idx)));
function bShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = a[i - n + a.length] ?? 1;
    return x === 1 ? (b[i - n + b.length] ?? 1) : x;
  });
}
const rMap = (a: Arr, f: (x: number) => number): Arr => ({ shape: a.shape, data: a.data.map(f) });
function rZip(a: Arr, b: Arr, f: (x: number, y: number) => number): Arr {
  return build(bShape(a.shape, b.shape), (idx) => f(at(a, bIdx(a, idx)), at(b, bIdx(b, idx))));
}
function rReduce(a: Arr, axesIn: readonly number[] | undefined, keepdim: boolean, op: 'sum' | 'abs' | 'max' | 'min' | 'amax'): Arr {
  const axes = axesIn === undefined ? a.shape.map((_, i) => i) : axesIn.map((x) => axisOf(x, a.shape.length));
  const kept = a.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const acc = new Array<number>(numelOf(kept)).fill(op === 'max' ? -Infinity : op === 'min' ? Infinity : 0);
  for (let i = 0; i < a.data.length; i++) {
    const idx = unravel(i, a.shape);
    let o = 0;
    for (let d = 0; d < kept.length; d++) o = o * kept[d] + (axes.includes(d) ? 0 : idx[d]);
    const v = a.data[i];
    acc[o] = op === 'sum' ? acc[o] + v : op === 'abs' ? acc[o] + Math.abs(v) : op === 'max' ? Math.max(acc[o], v) : op === 'amax' ? Math.max(acc[o], Math.abs(v)) : Math.min(acc[o], v);
  }
  return { shape: keepdim ? kept : kept.filter((_, i) => !axes.includes(i)), data: acc };
}

// ---- tensors in, numbers out ------------------------------------------------------------------------

/** Raw storage read back and decoded here, so checks do not depend on the backend's cast kernels. */
function read(t: Tensor): Arr {
  const raw = t.toStorageArray();
  const shape = [...t.shape];
  if (raw instanceof BigInt64Array) return { shape, data: Array.from(raw, Number) };
  if (t.dtype === 'bfloat16') return { shape, data: Array.from(raw, bf16BitsToF32) };
  if (t.dtype === 'float16') return { shape, data: Array.from(raw, f16BitsToF32) };
  return { shape, data: Array.from(raw) };
}

const fmtIdx = (i: number, shape: readonly number[]): string => `[${unravel(i, shape).join(',')}]`;
const same = (g: number, w: number): boolean => g === w || (Number.isNaN(g) && Number.isNaN(w));

/** Elementwise check: `want` is already rounded to the output dtype (exact for integer outputs). */
function checkEw(what: string, dtype: DType, got: Tensor, want: Arr): void {
  const g = read(got);
  assert.deepEqual(g.shape, want.shape, `${what}: shape`);
  assert.equal(got.dtype, dtype, `${what}: dtype`);
  const tol = dtype in TOL ? TOL[dtype as FloatDType].ew : { rel: 0, abs: 0 };
  g.data.forEach((x, i) => {
    const w = want.data[i];
    if (same(x, w)) return;
    const ok = Number.isFinite(w) && ('ulps' in tol
      ? ulpDistance(dtype as 'bfloat16' | 'float16', x, w) <= tol.ulps
      : Math.abs(x - w) <= tol.rel * Math.abs(w) + tol.abs);
    assert.ok(ok, `${what} (${dtype}) at ${fmtIdx(i, g.shape)}: got ${x}, want ${w}`);
  });
}

/** Accumulating ops: |got - want| <= TOL.acc * scale (non-finite wants must match exactly). */
function checkAcc(what: string, dtype: FloatDType, got: Tensor, want: Arr, scale: Arr): void {
  const g = read(got);
  assert.deepEqual(g.shape, want.shape, `${what}: shape`);
  g.data.forEach((x, i) => {
    const w = want.data[i];
    const ok = same(x, w) || (Number.isFinite(w) && Math.abs(x - w) <= TOL[dtype].acc * scale.data[i] + 1e-300);
    assert.ok(ok, `${what} (${dtype}) at ${fmtIdx(i, g.shape)}: got ${x}, want ${w} (scale ${scale.data[i]})`);
  });
}

interface Ctx extends BackendUnderTest { dtype: FloatDType; rng: Rng }

/** A tensor on the backend and its reference, with values drawn from [lo, hi) (or given). */
function input(c: Ctx, shape: readonly number[], lo = -3, hi = 3, values?: readonly number[], dtype: DType = c.dtype): { t: Tensor; r: Arr } {
  const draw = (): number => roundTo(dtype, lo + (hi - lo) * c.rng.next());
  const data = values ? values.map((v) => roundTo(dtype, v)) : Array.from({ length: numelOf(shape) }, draw);
  return { t: T.tensor(data, shape, { dtype, device: c.backend }), r: { shape: [...shape], data } };
}

type Step = ['transpose', number, number] | ['slice', number, number, number] | ['expand', number[]] | ['permute', number[]];
interface ViewCase { name: string; base: number[]; steps: Step[] }
/** Views every kernel reads: the same steps are applied to the tensor and to its reference. */
const VIEWS: ViewCase[] = [
  { name: 'rank-0', base: [], steps: [] },
  { name: 'rank-1', base: [7], steps: [] },
  { name: 'transposed', base: [4, 3], steps: [['transpose', 0, -1]] },
  { name: 'sliced (offset, inner stride)', base: [3, 6, 4], steps: [['slice', 1, 2, 5], ['slice', -1, 1, 3]] },
  { name: 'broadcast (stride 0)', base: [3, 1], steps: [['expand', [2, 3, 4]]] },
  { name: 'size-1 dims rank-4', base: [2, 1, 3, 1], steps: [] },
  { name: 'permuted rank-4', base: [2, 3, 1, 4], steps: [['permute', [3, 0, 2, 1]]] },
];
function view(c: Ctx, v: ViewCase, lo = -3, hi = 3, values?: readonly number[], dtype: DType = c.dtype): { t: Tensor; r: Arr } {
  let { t, r } = input(c, v.base, lo, hi, values, dtype);
  for (const s of v.steps) {
    if (s[0] === 'transpose') {
      const axes = r.shape.map((_, i) => i);
      [axes[axisOf(s[1], axes.length)], axes[axisOf(s[2], axes.length)]] = [axisOf(s[2], axes.length), axisOf(s[1], axes.length)];
      [t, r] = [T.transpose(t, s[1], s[2]), rPermute(r, axes)];
    } else if (s[0] === 'slice') [t, r] = [T.slice(t, s[1], s[2], s[3]), rSlice(r, s[1], s[2], s[3])];
    else if (s[0] === 'expand') [t, r] = [T.expand(t, s[1]), rExpand(r, s[1])];
    else [t, r] = [T.permute(t, s[1]), rPermute(r, s[1])];
  }
  return { t, r };
}
const V = (name: string): ViewCase => VIEWS.find((v) => v.name.startsWith(name))!;

/** One node:test test per backend, one subtest per dtype, each inside tidy(). */
function perDtype(title: string, body: (c: Ctx) => void): void {
  forEachBackend(title, async (b, t) => {
    for (const dtype of dtypesFor(b.name)) {
      await t.test(dtype, () => T.tidy(() => body({ ...b, dtype, rng: new Rng(17) })));
    }
  });
}

// ---- elementwise --------------------------------------------------------------------------------------

const UNARY_REF: { [K in UnaryOp]: { f: (x: number) => number; dom: [number, number] } } = {
  neg: { f: (x) => -x, dom: [-3, 3] }, exp: { f: Math.exp, dom: [-4, 4] }, log: { f: Math.log, dom: [0.05, 4] },
  sqrt: { f: Math.sqrt, dom: [0, 4] }, rsqrt: { f: (x) => 1 / Math.sqrt(x), dom: [0.05, 4] },
  sin: { f: Math.sin, dom: [-3, 3] }, cos: { f: Math.cos, dom: [-3, 3] }, tanh: { f: Math.tanh, dom: [-3, 3] },
  sigmoid: { f: (x) => 1 / (1 + Math.exp(-x)), dom: [-6, 6] }, silu: { f: (x) => x / (1 + Math.exp(-x)), dom: [-6, 6] },
  abs: { f: Math.abs, dom: [-3, 3] }, reciprocal: { f: (x) => 1 / x, dom: [0.1, 4] }, relu: { f: (x) => Math.max(0, x), dom: [-3, 3] },
  sign: { f: (x) => (x > 0 ? 1 : x < 0 ? -1 : x), dom: [-3, 3] }, square: { f: (x) => x * x, dom: [-3, 3] },
};

perDtype('unary ops on strided views, and on 0, -0, ±inf, NaN', (c) => {
  for (const op of UNARY_OPS) {
    const { f, dom } = UNARY_REF[op];
    for (const v of VIEWS) {
      const { t, r } = view(c, v, dom[0], dom[1]);
      checkEw(`${op} ${v.name}`, c.dtype, T.unary(op, t), rMap(r, (x) => roundTo(c.dtype, f(x))));
    }
    const sp = input(c, [5], 0, 0, [0, -0, Infinity, -Infinity, NaN]);
    checkEw(`${op} special values`, c.dtype, T.unary(op, sp.t), rMap(sp.r, (x) => roundTo(c.dtype, f(x))));
  }
});

const BINARY_REF: { [K in BinaryOp]: { f: (a: number, b: number) => number; a: [number, number]; b: [number, number] } } = {
  add: { f: (a, b) => a + b, a: [-3, 3], b: [-3, 3] }, sub: { f: (a, b) => a - b, a: [-3, 3], b: [-3, 3] },
  mul: { f: (a, b) => a * b, a: [-3, 3], b: [-3, 3] }, div: { f: (a, b) => a / b, a: [-3, 3], b: [0.25, 3] },
  maximum: { f: Math.max, a: [-3, 3], b: [-3, 3] }, minimum: { f: Math.min, a: [-3, 3], b: [-3, 3] },
  pow: { f: Math.pow, a: [0.25, 3], b: [-2, 2] },
};

/** Operand pairs: same shape, scalar, strided views of equal shape, broadcasting both ways (result rank 4). */
const PAIRS: [ViewCase, ViewCase][] = [
  [{ name: 'a', base: [2, 3], steps: [] }, { name: 'b', base: [2, 3], steps: [] }],
  [V('rank-0'), V('rank-1')],
  [V('transposed'), { name: 'sliced [3,4]', base: [5, 4], steps: [['slice', 0, 1, 4]] }],
  [V('broadcast'), { name: 'sliced [4]', base: [6], steps: [['slice', 0, 1, 5]] }],
  [V('permuted'), { name: '[1,5,3]', base: [1, 5, 3], steps: [] }],
];

perDtype('binary ops with broadcasting, views and scalar operands', (c) => {
  for (const op of BINARY_OPS) {
    const { f, a: da, b: db } = BINARY_REF[op];
    const want = (x: Arr, y: Arr): Arr => rZip(x, y, (p, q) => roundTo(c.dtype, f(p, q)));
    for (const [va, vb] of PAIRS) {
      const a = view(c, va, da[0], da[1]);
      const b = view(c, vb, db[0], db[1]);
      checkEw(`${op} ${va.name} ⊕ ${vb.name}`, c.dtype, T.binary(op, a.t, b.t), want(a.r, b.r));
    }
    const a = view(c, V('transposed'), da[0], da[1]);
    const s = { shape: [], data: [roundTo(c.dtype, 0.75 * db[1])] };
    checkEw(`${op} tensor ⊕ number`, c.dtype, T.binary(op, a.t, s.data[0]), want(a.r, s));
    checkEw(`${op} number ⊕ tensor`, c.dtype, T.binary(op, s.data[0], a.t), want(s, a.r));
  }
  // NaN propagates through maximum / minimum (torch semantics)
  const x = input(c, [3], 0, 0, [NaN, 1, NaN]);
  const y = input(c, [3], 0, 0, [1, NaN, NaN]);
  checkEw('maximum NaN', c.dtype, T.maximum(x.t, y.t), { shape: [3], data: [NaN, NaN, NaN] });
  checkEw('minimum NaN', c.dtype, T.minimum(x.t, y.t), { shape: [3], data: [NaN, NaN, NaN] });
});

const COMPARE_REF: { [K in CompareOp]: (a: number, b: number) => boolean } = {
  eq: (a, b) => a === b, ne: (a, b) => a !== b, lt: (a, b) => a < b, le: (a, b) => a <= b, gt: (a, b) => a > b, ge: (a, b) => a >= b,
};

perDtype('compare ops (ties and NaN) and where', (c) => {
  const pick = (): number => [-1, -0.5, 0, 0.5, 1, NaN][Math.floor(c.rng.next() * 6)];
  const picked = (v: ViewCase): { t: Tensor; r: Arr } => view(c, v, 0, 0, Array.from({ length: numelOf(v.base) }, pick));
  for (const op of COMPARE_OPS) {
    for (const [va, vb] of PAIRS) {
      const a = picked(va);
      const b = picked(vb);
      checkEw(`${op} ${va.name} ⊕ ${vb.name}`, 'bool', T.compare(op, a.t, b.t), rZip(a.r, b.r, (p, q) => (COMPARE_REF[op](p, q) ? 1 : 0)));
    }
  }
  const cond = input(c, [2, 1, 4], 0, 0, [1, 0, 0, 1, 1, 1, 0, 0], 'bool');
  const a = view(c, V('broadcast'));
  const b = view(c, { name: 'sliced [4]', base: [6], steps: [['slice', 0, 2, 6]] });
  const pos = (r: Arr, i: number[]): number => at(r, bIdx(r, i));
  const want = build([2, 3, 4], (i) => (pos(cond.r, i) !== 0 ? pos(a.r, i) : pos(b.r, i)));
  checkEw('where bool', c.dtype, T.where(cond.t, a.t, b.t), want);
  const fcond = view(c, V('transposed'), 0, 0, [0, 1.5, -2, 0, 0, 3, 0, NaN, 1, 0, 0, 2]);
  checkEw('where float cond, number', c.dtype, T.where(fcond.t, b.t, 0), build([3, 4], (i) => (at(fcond.r, i) !== 0 ? pos(b.r, i) : 0)));
});

perDtype('cast to and from every float dtype, int32, int64, bool', (c) => {
  const targets: DType[] = [...dtypesFor(c.name), 'int32', 'int64', 'bool'];
  for (const to of targets) {
    const x = view(c, V('transposed'), -6, 6, [0, -0, 0.5, -1.5, 2.5, -2.75, 3.999, 1e-3, -6, 5.25, 1, -1]);
    checkEw(`${c.dtype} -> ${to}`, to, T.cast(x.t, to), rMap(x.r, (v) => roundTo(to, v)));
  }
  for (const from of ['int32', 'int64', 'bool'] as const) {
    const values = Array.from({ length: 24 }, (_, i) => (from === 'bool' ? Number(i % 3 === 0) : ((i * 37) % 101) - 50));
    const x = view(c, V('permuted'), 0, 0, values, from);
    checkEw(`${from} -> ${c.dtype}`, c.dtype, T.cast(x.t, c.dtype), rMap(x.r, (v) => roundTo(c.dtype, v)));
  }
});

// ---- reductions -------------------------------------------------------------------------------------

const REDUCE_CASES: [string, number[] | undefined, boolean][] = [
  ['rank-0', undefined, false], ['rank-1', [0], true], ['transposed', [0], false], ['transposed', [-1], true],
  ['sliced', [-2], true], ['broadcast', [0, 2], false], ['broadcast', undefined, true], ['size-1', [1, -1], false],
  ['permuted', [-1], false], ['permuted', [0, 2], true], ['permuted', [1, 3], false], ['permuted', undefined, false],
];

perDtype('sum / mean / max / min / amax over axes (keepdim, negative axes)', (c) => {
  for (const [name, axes, keepdim] of REDUCE_CASES) {
    const { t, r } = view(c, V(name));
    const what = `${name} axes=${axes === undefined ? 'all' : axes.join(',')} keepdim=${keepdim}`;
    const abs = rReduce(r, axes, keepdim, 'abs');
    checkAcc(`sum ${what}`, c.dtype, T.sum(t, axes, keepdim), rReduce(r, axes, keepdim, 'sum'), abs);
    const n = numelOf(r.shape) / Math.max(1, numelOf(rReduce(r, axes, keepdim, 'sum').shape));
    checkAcc(`mean ${what}`, c.dtype, T.mean(t, axes, keepdim), rMap(rReduce(r, axes, keepdim, 'sum'), (v) => v / n), rMap(abs, (v) => v / n));
    checkEw(`max ${what}`, c.dtype, T.max(t, axes, keepdim), rReduce(r, axes, keepdim, 'max'));
    checkEw(`min ${what}`, c.dtype, T.min(t, axes, keepdim), rReduce(r, axes, keepdim, 'min'));
    checkEw(`amax ${what}`, c.dtype, T.amax(t, axes, keepdim), rReduce(r, axes, keepdim, 'amax'));
  }
  const nan = input(c, [2, 3], 0, 0, [1, NaN, 2, -1, -2, -3]);
  checkEw('max with NaN', c.dtype, T.max(nan.t, -1), { shape: [2], data: [NaN, -1] });
  checkEw('min with NaN', c.dtype, T.min(nan.t, -1), { shape: [2], data: [NaN, -3] });
  checkEw('amax with NaN', c.dtype, T.amax(nan.t, -1), { shape: [2], data: [NaN, 3] });
  checkEw('amax of an empty reduction', c.dtype, T.amax(input(c, [2, 0], 0, 0, []).t, -1), { shape: [2], data: [0, 0] });
  checkEw('max of an empty reduction', c.dtype, T.max(input(c, [2, 0], 0, 0, []).t, -1), rMap({ shape: [2], data: [-Infinity, -Infinity] }, (v) => roundTo(c.dtype, v)));
});

perDtype('argmax: first index on ties, NaN counts as the maximum', (c) => {
  const cases = [['transposed', 0, false], ['transposed', -1, true], ['permuted', -1, false], ['permuted', 1, true], ['broadcast', 0, false], ['rank-1', 0, false]] as const;
  for (const [name, axis, keepdim] of cases) {
    const v = V(name);
    const { t, r } = view(c, v, 0, 0, Array.from({ length: numelOf(v.base) }, () => Math.floor(c.rng.next() * 3)));
    const ax = axisOf(axis, r.shape.length);
    const kept = r.shape.map((d, i) => (i === ax ? 1 : d));
    const want = build(kept, (idx) => {
      let best = 0;
      const along = (j: number): number => at(r, idx.map((p, d) => (d === ax ? j : p)));
      for (let j = 1; j < r.shape[ax]; j++) if (along(j) > along(best)) best = j;
      return best;
    });
    const dropped = { shape: kept.filter((_, i) => i !== ax), data: want.data };
    checkEw(`argmax ${name} axis ${axis}`, 'int32', T.argmax(t, axis, keepdim), keepdim ? want : dropped);
  }
  const nan = input(c, [2, 4], 0, 0, [1, NaN, 3, NaN, 2, 2, -1, 0]);
  checkEw('argmax NaN', 'int32', T.argmax(nan.t, -1), { shape: [2], data: [1, 0] });
});

perDtype('long contiguous reductions: vector loads from unaligned starts, split over many blocks', (c) => {
  // rows of 20,011 elements starting 3 elements into their storage (not 16-byte aligned), and a 1-D
  // reduction long enough to be split across CTAs; the maximum sits in a scalar head or tail element
  const rows = input(c, [3, 20_014]);
  const { t, r } = { t: T.slice(rows.t, 1, 3, 20_014), r: rSlice(rows.r, 1, 3, 20_014) };
  const whole = input(c, [300_005]);
  const flat = { t: T.slice(whole.t, 0, 1, 300_004), r: rSlice(whole.r, 0, 1, 300_004) };
  for (const [what, x] of [['rows', { t, r }], ['flat', flat]] as const) {
    const abs = rReduce(x.r, [-1], false, 'abs');
    checkAcc(`sum ${what}`, c.dtype, T.sum(x.t, [-1]), rReduce(x.r, [-1], false, 'sum'), abs);
    checkEw(`amax ${what}`, c.dtype, T.amax(x.t, [-1]), rReduce(x.r, [-1], false, 'amax'));
    checkEw(`max ${what}`, c.dtype, T.max(x.t, [-1]), rReduce(x.r, [-1], false, 'max'));
    checkEw(`min ${what}`, c.dtype, T.min(x.t, [-1]), rReduce(x.r, [-1], false, 'min'));
  }
  const peak = input(c, [20_011], 0, 1, Array.from({ length: 20_011 }, (_, i) => (i === 20_010 ? 9 : i === 1 ? -9 : (i % 7) / 8)));
  checkEw('amax, largest |x| in the head', c.dtype, T.amax(T.slice(peak.t, 0, 1, 20_010)), { shape: [], data: [9] });
  checkEw('max, largest x in the tail', c.dtype, T.max(T.slice(peak.t, 0, 2, 20_011)), { shape: [], data: [9] });
  checkEw('argmax, in the tail', 'int32', T.argmax(T.slice(peak.t, 0, 2, 20_011), 0), { shape: [], data: [20_008] });
});

perDtype('softmax / logSoftmax on axis -1 and 0 (with -inf entries)', (c) => {
  const rowwise = (r: Arr, axis: number, log: boolean): Arr => {
    const ax = axisOf(axis, r.shape.length);
    return build(r.shape, (idx) => {
      const row = Array.from({ length: r.shape[ax] }, (_, j) => at(r, idx.map((p, d) => (d === ax ? j : p))));
      const m = Math.max(...row);
      if (m === -Infinity) return NaN; // an all -inf row: NaN for both, like torch
      const s = row.reduce((acc, x) => acc + Math.exp(x - m), 0);
      const x = at(r, idx);
      return log ? x - m - Math.log(s) : Math.exp(x - m) / s;
    });
  };
  const ninf = -Infinity;
  const masked: ViewCase = { name: 'masked [4,5]', base: [4, 5], steps: [] };
  const maskedVals = [0.5, ninf, 1, -2, ninf, ninf, ninf, ninf, 3, ninf, 2, 1, 0, -1, -2, ninf, ninf, ninf, ninf, ninf];
  const cases: [ViewCase, number, readonly number[] | undefined][] = [
    [V('transposed'), -1, undefined], [V('transposed'), 0, undefined], [V('permuted'), -1, undefined], [V('permuted'), 0, undefined],
    [V('sliced'), 1, undefined], [V('broadcast'), -1, undefined], [V('rank-1'), 0, undefined], [masked, -1, maskedVals],
    [{ name: 'masked^T', base: [5, 4], steps: [['transpose', 0, 1]] }, 0, maskedVals],
  ];
  for (const [v, axis, values] of cases) {
    const { t, r } = view(c, v, -3, 3, values);
    const sm = rowwise(r, axis, false);
    checkAcc(`softmax ${v.name} axis ${axis}`, c.dtype, T.softmax(t, axis), sm, rMap(sm, (p) => Math.max(Math.abs(p), 1e-3)));
    const lsm = rowwise(r, axis, true);
    checkAcc(`logSoftmax ${v.name} axis ${axis}`, c.dtype, T.logSoftmax(t, axis), lsm, rMap(lsm, (p) => Math.max(Math.abs(p), 1)));
  }
});

// ---- matmul -------------------------------------------------------------------------------------------

function rMatmul(a: Arr, b: Arr, abs: boolean): Arr {
  const a2 = a.shape.length === 1 ? { shape: [1, ...a.shape], data: a.data } : a;
  const b2 = b.shape.length === 1 ? { shape: [...b.shape, 1], data: b.data } : b;
  const [m, k] = a2.shape.slice(-2);
  const n = b2.shape[b2.shape.length - 1];
  const ab = { shape: a2.shape.slice(0, -2), data: [] };
  const bb = { shape: b2.shape.slice(0, -2), data: [] };
  const batch = bShape(ab.shape, bb.shape);
  const out = build([...batch, m, n], (idx) => {
    const bi = idx.slice(0, -2);
    const [i, j] = idx.slice(-2);
    let s = 0;
    for (let p = 0; p < k; p++) {
      const prod = at(a2, [...bIdx(ab, bi), i, p]) * at(b2, [...bIdx(bb, bi), p, j]);
      s += abs ? Math.abs(prod) : prod;
    }
    return s;
  });
  const shape = [...batch, ...(a.shape.length === 1 ? [] : [m]), ...(b.shape.length === 1 ? [] : [n])];
  return { shape, data: out.data };
}

perDtype('matmul: 2-D, transposed operands, broadcast batches, 1-D operands, size-1 dims', (c) => {
  const M = (base: number[], ...steps: Step[]): ViewCase => ({ name: `[${base}]${steps.map((s) => ` ${s[0]}`).join('')}`, base, steps });
  const tr = (a: number, b: number): Step => ['transpose', a, b];
  const cases: [ViewCase, ViewCase][] = [
    [M([3, 5]), M([5, 4])], [M([5, 3], tr(0, 1)), M([5, 4])], [M([3, 5]), M([4, 5], tr(-1, -2))],
    [M([5, 3], tr(0, 1)), M([4, 5], tr(0, 1))], [M([3, 5]), M([4, 7], ['slice', 1, 1, 6], tr(0, 1))],
    // batches: broadcast on both sides, folded into one GEMM, a matrix times a batch, a stride-0 batch
    [M([2, 1, 3, 5]), M([3, 5, 4])], [M([2, 3, 5], ['slice', 1, 0, 2]), M([5, 4])],
    [M([3, 5]), M([2, 4, 5], tr(1, 2))], [M([1, 5], ['expand', [2, 3, 5]]), M([2, 5, 1])],
    // 1-D operands (torch.matmul promotion) and size-1 dims
    [M([5]), M([5, 4])], [M([3, 5]), M([5])], [M([5]), M([5])], [M([5]), M([2, 5, 4])], [M([1, 5]), M([5, 1])], [M([3, 1]), M([1, 4])],
  ];
  for (const [va, vb] of cases) {
    const a = view(c, va, -1, 1);
    const b = view(c, vb, -1, 1);
    checkAcc(`matmul ${va.name} @ ${vb.name}`, c.dtype, T.matmul(a.t, b.t), rMatmul(a.r, b.r, false), rMatmul(a.r, b.r, true));
  }
});

// x @ W^T with up to 8 rows of x is the decode step's GEMV (CUDA: kernels/gemv.cu for 16-bit floats when
// aligned, cuBLASLt otherwise): row counts 1..9, K past one 1024-element unrolled step and not a multiple
// of it, batched rows, a row-strided x, and a misaligned x that must fall back to the GEMM.
perDtype('matmul: few rows against a transposed weight (the decode GEMV)', (c) => {
  const M = (base: number[], ...steps: Step[]): ViewCase => ({ name: `[${base}]${steps.map((s) => ` ${s[0]}`).join('')}`, base, steps });
  const wT = (n: number, k: number): ViewCase => M([n, k], ['transpose', 0, 1]);
  const cases: [ViewCase, ViewCase][] = [
    [M([1, 1048]), wT(37, 1048)], [M([3, 264]), wT(40, 264)], [M([8, 264]), wT(9, 264)], [M([9, 264]), wT(9, 264)],
    [M([2, 1, 264]), wT(17, 264)], [M([4, 272], ['slice', 1, 0, 264]), wT(11, 264)], [M([2, 272], ['slice', 1, 1, 265]), wT(11, 264)],
    [M([1, 16]), wT(1, 16)],
  ];
  for (const [va, vb] of cases) {
    const a = view(c, va, -1, 1);
    const b = view(c, vb, -1, 1);
    checkAcc(`matmul ${va.name} @ ${vb.name}`, c.dtype, T.matmul(a.t, b.t), rMatmul(a.r, b.r, false), rMatmul(a.r, b.r, true));
  }
});

// ---- indexing -----------------------------------------------------------------------------------------

perDtype('gather / scatterAdd / embedding (negative indices, int32 and int64)', (c) => {
  const x = view(c, V('transposed'));
  const y = view(c, { name: '[2,3,4] sliced', base: [2, 5, 4], steps: [['slice', 1, 1, 4]] });
  const gathers: [{ t: Tensor; r: Arr }, number, number[], number[], 'int32' | 'int64'][] = [
    [x, 0, [2, 4], [0, -1, 2, 1, -3, 0, 2, 2], 'int32'],
    [x, -1, [2, 3], [3, -4, 0, 1, 1, -1], 'int64'],
    [y, 1, [2, 5, 3], Array.from({ length: 30 }, (_, i) => ((i * 7) % 6) - 3), 'int32'],
  ];
  for (const [src, axis, shape, idx, idt] of gathers) {
    const index = T.tensor(idx, shape, { dtype: idt, device: c.backend });
    const ir = { shape, data: idx };
    const ax = axisOf(axis, shape.length);
    const wrap = (i: number): number => (i < 0 ? i + src.r.shape[ax] : i);
    const want = build(shape, (p) => at(src.r, p.map((v, d) => (d === ax ? wrap(at(ir, p)) : v))));
    checkEw(`gather axis ${axis} ${idt}`, c.dtype, T.gather(src.t, axis, index), want);
    // scatter-add the same positions back onto a base (duplicates accumulate)
    const upd = input(c, shape);
    const sum = rMap(src.r, (v) => v);
    const mag = rMap(src.r, Math.abs);
    for (let i = 0; i < idx.length; i++) {
      const p = unravel(i, shape);
      const o = p.map((v, d) => (d === ax ? wrap(idx[i]) : v));
      const flat = o.reduce((acc, v, d) => acc * src.r.shape[d] + v, 0);
      sum.data[flat] += upd.r.data[i];
      mag.data[flat] += Math.abs(upd.r.data[i]);
    }
    checkAcc(`scatterAdd axis ${axis} ${idt}`, c.dtype, T.scatterAdd(src.t, axis, index, upd.t), sum, mag);
  }
  const table = view(c, { name: 'table [6,3]', base: [6, 5], steps: [['slice', -1, 1, 4]] });
  const ids = [5, 0, -1, 2, 2, -6];
  const want = build([2, 3, 3], ([i, j, k]) => at(table.r, [(ids[i * 3 + j] + 6) % 6, k]));
  checkEw('embedding', c.dtype, T.embedding(table.t, T.tensor(ids, [2, 3], { dtype: 'int32', device: c.backend })), want);
});

perDtype('scatterInto: in-place writes at index positions (strided target, broadcast index, bad index)', (c) => {
  // a KV-cache write: target [2, 3, 6, 4] viewed through a transpose, new rows [2, 3, 2, 4] at positions 4, 1
  const base = view(c, { name: 'cache', base: [2, 6, 3, 4], steps: [['transpose', 1, 2]] });
  const src = input(c, [2, 3, 2, 4]);
  const pos = [4, -5]; // -5 is position 1
  const index = T.expand(T.reshape(T.tensor(pos, [2], { dtype: 'int32', device: c.backend }), [1, 1, 2, 1]), [2, 3, 2, 4]);
  const want = build([2, 3, 6, 4], ([b, h, t, d]) => (t === 4 ? at(src.r, [b, h, 0, d]) : t === 1 ? at(src.r, [b, h, 1, d]) : at(base.r, [b, h, t, d])));
  T.scatterInto(base.t, 2, index, src.t);
  checkEw('scatterInto a transposed cache', c.dtype, base.t, want);
  // an out-of-range index is refused before anything is written
  const before = read(base.t);
  const bad = T.expand(T.reshape(T.tensor([0, 6], [2], { dtype: 'int64', device: c.backend }), [1, 1, 2, 1]), [2, 3, 2, 4]);
  assert.throws(() => T.scatterInto(base.t, 2, bad, src.t), /scatter: index 6 is out of bounds for a dimension of size 6/);
  assert.deepEqual(read(base.t).data, before.data, 'scatterInto wrote before its index check');
});

// ---- data movement and creation ---------------------------------------------------------------------

perDtype('concat / split / slice / reshape / permute of views', (c) => {
  const a = view(c, V('transposed'));
  const b = view(c, { name: 'sliced [3,2]', base: [3, 5], steps: [['slice', -1, 1, 3]] });
  const e = view(c, { name: 'expanded [3,1]', base: [1, 1], steps: [['expand', [3, 1]]] });
  const cat = build([3, 7], ([i, j]) => (j < 4 ? at(a.r, [i, j]) : j < 6 ? at(b.r, [i, j - 4]) : at(e.r, [i, 0])));
  const joined = T.concat([a.t, b.t, e.t], -1);
  checkEw('concat axis -1', c.dtype, joined, cat);
  const p = view(c, V('permuted'));
  checkEw('concat axis 0', c.dtype, T.concat([p.t, p.t], 0), { shape: [8, 2, 1, 3], data: [...p.r.data, ...p.r.data] });
  T.split(joined, [2, 4, 1], 1).forEach((piece, i) => checkEw(`split piece ${i}`, c.dtype, piece, rSlice(cat, 1, [0, 2, 6][i], [2, 6, 7][i])));
  for (const [s0, s1] of [[-3, -1], [1, 100], [-100, 2], [5, 3]]) {
    checkEw(`slice ${s0}:${s1}`, c.dtype, T.slice(joined, 1, s0, s1), rSlice(cat, 1, s0, s1));
  }
  for (const shape of [[2, 6], [-1], [12, 1, 1], [1, 3, 4]]) {
    checkEw(`reshape transposed -> [${shape}]`, c.dtype, T.reshape(a.t, shape), { shape: shape[0] === -1 ? [12] : shape, data: a.r.data });
  }
  checkEw('reshape permuted -> [4,6]', c.dtype, T.reshape(p.t, [4, 6]), { shape: [4, 6], data: p.r.data });
  const s = view(c, V('rank-0'));
  checkEw('reshape rank-0 -> [1,1]', c.dtype, T.reshape(s.t, [1, 1]), { shape: [1, 1], data: s.r.data });
  checkEw('permute permuted', c.dtype, T.contiguous(T.permute(p.t, [2, 0, -1, 1])), rPermute(p.r, [2, 0, 3, 1]));
  checkEw('squeeze/unsqueeze', c.dtype, T.unsqueeze(T.squeeze(p.t, 2), -1), { shape: [4, 2, 3, 1], data: p.r.data });
});

perDtype('fill / full / zeros / ones / arange', (c) => {
  const o = { dtype: c.dtype, device: c.backend };
  checkEw('full', c.dtype, T.full([2, 1, 3], 1.3, o), { shape: [2, 1, 3], data: new Array<number>(6).fill(roundTo(c.dtype, 1.3)) });
  checkEw('full rank-0', c.dtype, T.full([], -2.5, o), { shape: [], data: [-2.5] });
  checkEw('zeros', c.dtype, T.zeros([3], o), { shape: [3], data: [0, 0, 0] });
  checkEw('ones', c.dtype, T.ones([1, 2], o), { shape: [1, 2], data: [1, 1] });
  checkEw('full -inf', c.dtype, T.full([2], -Infinity, o), rMap({ shape: [2], data: [-Infinity, -Infinity] }, (v) => roundTo(c.dtype, v)));
  checkEw('arange step', c.dtype, T.arange(2, -1, -0.5, o), { shape: [6], data: [2, 1.5, 1, 0.5, 0, -0.5] });
  checkEw('arange default int32', 'int32', T.arange(0, 5, 1, { device: c.backend }), { shape: [5], data: [0, 1, 2, 3, 4] });
  checkEw('arange int64', 'int64', T.arange(1, 8, 3, { dtype: 'int64', device: c.backend }), { shape: [3], data: [1, 4, 7] });
  checkEw('arange float default', 'float32', T.arange(0, 1, 0.25, { device: c.backend }), { shape: [4], data: [0, 0.25, 0.5, 0.75] });
});

/** Largest value below 1 per dtype: uniform draws are clamped there before rounding so they stay < 1. */
const BELOW_ONE: Record<FloatDType, number> = { float64: 1, float32: 1, bfloat16: 1 - 2 ** -8, float16: 1 - 2 ** -11 };

perDtype('rand / randn: seeded, identical across backends, uniform [0,1) and standard normal', (c) => {
  const n = 20000;
  const o = { dtype: c.dtype, device: c.backend };
  const u = read(T.rand([n], 42, o)).data;
  assert.deepEqual(read(T.rand([n], 42, o)).data, u, 'rand: same seed, same values');
  assert.notDeepEqual(read(T.rand([n], 43, o)).data.slice(0, 16), u.slice(0, 16), 'rand: another seed, other values');
  // uniform draws are exact float32 values: every backend must produce these bit for bit
  const stream = build([4, 5], ([i, j]) => roundTo(c.dtype, Math.min(uniformAt(7, i * 5 + j), BELOW_ONE[c.dtype])));
  assert.deepEqual(read(T.rand([4, 5], 7, o)), stream, 'rand: the counter-based stream, exactly');
  assert.ok(u.every((v) => v >= 0 && v < 1), 'rand: every draw in [0, 1)');
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = (xs: number[]): number => {
    const m = mean(xs);
    return mean(xs.map((x) => (x - m) ** 2));
  };
  assert.ok(Math.abs(mean(u) - 0.5) < 0.01 && Math.abs(variance(u) - 1 / 12) < 0.005, `rand: mean ${mean(u)}, variance ${variance(u)}`);

  const z = read(T.randn([n], 42, o)).data;
  assert.deepEqual(read(T.randn([n], 42, o)).data, z, 'randn: same seed, same values');
  const want = build([3, 4, 2], (p) => normalAt(9, (p[0] * 4 + p[1]) * 2 + p[2]));
  checkAcc('randn stream', c.dtype, T.randn([3, 4, 2], 9, o), want, rMap(want, (v) => Math.max(Math.abs(v), 1)));
  const sd = Math.sqrt(variance(z));
  assert.ok(Math.abs(mean(z)) < 0.03 && Math.abs(sd - 1) < 0.03, `randn: mean ${mean(z)}, std ${sd}`);
});
