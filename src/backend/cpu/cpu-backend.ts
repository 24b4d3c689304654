// The CPU reference backend: plain TypeScript kernels that every other backend is tested against.
// Clarity over speed; float64 arithmetic, one rounding to the output dtype.

import type { AdamWHyper, AttentionOptions, Backend, BinaryOp, CompareOp, FusedKernels, ReduceOp, Storage, UnaryOp, View } from '../backend.js';
import * as F from './fused.js';
import { allocStorage, type DType, type StorageArray } from '../../tensor/dtype.js';
import { contiguousStrides, numel } from '../../tensor/shape.js';
import { normalAt, uniformAt } from '../../tensor/random.js';
import { BINARY_FN, COMPARE_FN, UNARY_FN } from './elementwise.js';
import { matmulCpu } from './matmul.js';
import { arrayOf, directOutput, gatherRaw, readIndices, readNumbers, viewOffsets, writeNumbers } from './strided.js';

class CpuStorage implements Storage {
  refs = 0;
  freed = false;
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    public array: StorageArray,
  ) {}
  get length(): number {
    return this.array.length;
  }
}

/** Splits a shape around `axis` into (outer, len, inner) for row-wise kernels on contiguous data. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis], numel(shape.slice(axis + 1))];
}

/** Largest value below 1 of the narrow float dtypes (uniform draws must stay in [0, 1) after rounding). */
const BELOW_ONE: Partial<Record<DType, number>> = {
  bfloat16: 1 - 2 ** -8,
  float16: 1 - 2 ** -11,
  float8_e4m3fn: 1 - 2 ** -4,
  float8_e5m2: 1 - 2 ** -3,
};

function checkIndex(i: number, size: number, op: string): void {
  if (i < 0 || i >= size) throw new RangeError(`${op}: index ${i} is out of bounds for a dimension of size ${size}`);
}

class CpuBackend implements Backend, FusedKernels {
  readonly name = 'cpu';
  private live = 0;

  alloc(dtype: DType, length: number): Storage {
    this.live++;
    return new CpuStorage(this, dtype, allocStorage(dtype, length));
  }
  free(storage: Storage): void {
    if (storage.freed) return;
    storage.freed = true;
    (storage as CpuStorage).array = allocStorage(storage.dtype, 0);
    this.live--;
  }
  /** number of storages allocated and not yet freed (for leak tests) */
  liveStorages(): number {
    return this.live;
  }
  fromHost(dtype: DType, data: StorageArray): Storage {
    this.live++;
    return new CpuStorage(this, dtype, data);
  }
  toHost(view: View): StorageArray {
    const arr = arrayOf(view);
    return gatherRaw(arr, viewOffsets(view));
  }

  copy(src: View, out: View): void {
    if (src.storage.dtype === out.storage.dtype) {
      // same dtype: move bit patterns, never round-trip through numbers
      const raw = gatherRaw(arrayOf(src), viewOffsets(src));
      const dst = arrayOf(out);
      const offs = viewOffsets(out);
      if (dst instanceof BigInt64Array) for (let i = 0; i < offs.length; i++) dst[offs[i]] = (raw as BigInt64Array)[i];
      else {
        const d = dst as Exclude<StorageArray, BigInt64Array>;
        const r = raw as Exclude<StorageArray, BigInt64Array>;
        for (let i = 0; i < offs.length; i++) d[offs[i]] = r[i];
      }
      return;
    }
    writeNumbers(out, readNumbers(src));
  }

  fill(out: View, value: number): void {
    const vals = new Float64Array(numel(out.shape)).fill(value);
    writeNumbers(out, vals);
  }

  unary(op: UnaryOp, x: View, out: View): void {
    const f = UNARY_FN[op];
    const xs = readNumbers(x);
    const direct = directOutput(out);
    const r = direct ?? new Float64Array(xs.length);
    for (let i = 0; i < xs.length; i++) r[i] = f(xs[i]);
    if (direct === null) writeNumbers(out, r);
  }

  binary(op: BinaryOp, a: View, b: View, out: View): void {
    const f = BINARY_FN[op];
    const as = readNumbers(a);
    const bs = readNumbers(b);
    const direct = directOutput(out);
    const r = direct ?? new Float64Array(as.length);
    switch (op) {
      // hot ops without the indirect call
      case 'add': for (let i = 0; i < r.length; i++) r[i] = as[i] + bs[i]; break;
      case 'mul': for (let i = 0; i < r.length; i++) r[i] = as[i] * bs[i]; break;
      default: for (let i = 0; i < r.length; i++) r[i] = f(as[i], bs[i]);
    }
    if (direct === null) writeNumbers(out, r);
  }

  compare(op: CompareOp, a: View, b: View, out: View): void {
    const f = COMPARE_FN[op];
    const as = readNumbers(a);
    const bs = readNumbers(b);
    const r = new Float64Array(as.length);
    for (let i = 0; i < r.length; i++) r[i] = f(as[i], bs[i]) ? 1 : 0;
    writeNumbers(out, r);
  }

  where(cond: View, a: View, b: View, out: View): void {
    const c = readNumbers(cond);
    const as = readNumbers(a);
    const bs = readNumbers(b);
    const r = new Float64Array(c.length);
    for (let i = 0; i < r.length; i++) r[i] = c[i] !== 0 ? as[i] : bs[i];
    writeNumbers(out, r);
  }

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
    const xs = readNumbers(x);
    const n = numel(out.shape);
    // identities, which empty reductions return: sum 0, max -inf, min +inf, amax 0
    const init = op === 'sum' || op === 'amax' ? 0 : op === 'max' ? -Infinity : Infinity;
    const isMax = op === 'max' || op === 'amax';
    const acc = new Float64Array(n).fill(init);
    // stride of each input dim in the output (0 on reduced dims)
    const oStrides = contiguousStrides(out.shape).map((s, d) => (axes.includes(d) ? 0 : s));
    const shape = x.shape;
    const rank = shape.length;
    const idx = new Array<number>(rank).fill(0);
    let o = 0;
    for (let i = 0; i < xs.length; i++) {
      const v = op === 'amax' ? Math.abs(xs[i]) : xs[i];
      if (op === 'sum') acc[o] += v;
      else if (Number.isNaN(v) || Number.isNaN(acc[o])) acc[o] = NaN;
      else if (isMax ? v > acc[o] : v < acc[o]) acc[o] = v;
      for (let d = rank - 1; d >= 0; d--) {
        o += oStrides[d];
        if (++idx[d] < shape[d]) break;
        o -= oStrides[d] * shape[d];
        idx[d] = 0;
      }
    }
    writeNumbers(out, acc);
  }

  argmax(x: View, axis: number, out: View): void {
    const xs = readNumbers(x);
    const [outer, len, inner] = around(x.shape, axis);
    const r = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = -Infinity;
        let bi = 0;
        for (let j = 0; j < len; j++) {
          const v = xs[(o * len + j) * inner + i];
          if (v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
            best = v;
            bi = j;
          }
        }
        r[o * inner + i] = bi;
      }
    }
    writeNumbers(out, r);
  }

  matmul(a: View, b: View, out: View): void {
    matmulCpu(a, b, out);
  }

  gather(x: View, axis: number, index: View, out: View): void {
    const idx = readIndices(index);
    const xs = arrayOf(x);
    const shape = index.shape;
    const rank = shape.length;
    const pos = new Array<number>(rank).fill(0);
    const offs = new Int32Array(idx.length);
    const size = x.shape[axis];
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i] < 0 ? idx[i] + size : idx[i];
      checkIndex(j, size, 'gather');
      let off = x.offset;
      for (let d = 0; d < rank; d++) off += (d === axis ? j : pos[d]) * x.strides[d];
      offs[i] = off;
      for (let d = rank - 1; d >= 0; d--) {
        if (++pos[d] < shape[d]) break;
        pos[d] = 0;
      }
    }
    const raw = gatherRaw(xs, offs);
    // `out` is contiguous and of x's dtype: place the gathered bit patterns directly
    const dst = arrayOf(out);
    if (dst instanceof BigInt64Array) dst.set(raw as BigInt64Array, out.offset);
    else (dst as Exclude<StorageArray, BigInt64Array>).set(raw as Exclude<StorageArray, BigInt64Array>, out.offset);
  }

  scatterAdd(out: View, axis: number, index: View, src: View): void {
    const idx = readIndices(index);
    const s = readNumbers(src);
    const cur = Float64Array.from(readNumbers(out));
    const oStrides = contiguousStrides(out.shape);
    const shape = index.shape;
    const rank = shape.length;
    const pos = new Array<number>(rank).fill(0);
    const size = out.shape[axis];
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i] < 0 ? idx[i] + size : idx[i];
      checkIndex(j, size, 'scatterAdd');
      let o = 0;
      for (let d = 0; d < rank; d++) o += (d === axis ? j : pos[d]) * oStrides[d];
      cur[o] += s[i];
      for (let d = rank - 1; d >= 0; d--) {
        if (++pos[d] < shape[d]) break;
        pos[d] = 0;
      }
    }
    writeNumbers(out, cur);
  }

  scatter(out: View, axis: number, index: View, src: View): void {
    if (src.storage.dtype !== out.storage.dtype) throw new TypeError(`scatter: src is ${src.storage.dtype}, out is ${out.storage.dtype}`);
    const idx = readIndices(index);
    const size = out.shape[axis];
    for (let i = 0; i < idx.length; i++) {
      if (idx[i] < 0) idx[i] += size;
      checkIndex(idx[i], size, 'scatter');
    }
    // out is addressed over the index's shape with its own strides, its coordinate on `axis` from the index
    const target = viewOffsets({ storage: out.storage, shape: index.shape, strides: out.strides.map((s, d) => (d === axis ? 0 : s)), offset: out.offset });
    const from = viewOffsets({ storage: src.storage, shape: index.shape, strides: src.strides, offset: src.offset });
    const o = arrayOf(out);
    const s = arrayOf(src);
    for (let i = 0; i < idx.length; i++) o[target[i] + idx[i] * out.strides[axis]] = s[from[i]];
  }

  softmax(x: View, axis: number, out: View): void {
    this.rowwise(x, axis, out, false);
  }
  logSoftmax(x: View, axis: number, out: View): void {
    this.rowwise(x, axis, out, true);
  }
  private rowwise(x: View, axis: number, out: View, log: boolean): void {
    const xs = readNumbers(x);
    const [outer, len, inner] = around(x.shape, axis);
    const r = new Float64Array(xs.length);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * len * inner + i;
        let m = -Infinity;
        for (let j = 0; j < len; j++) m = Math.max(m, xs[base + j * inner]);
        if (m === -Infinity) m = 0; // an all -inf row: NaN in softmax and logSoftmax alike (-inf - -inf), like torch
        let sum = 0;
        for (let j = 0; j < len; j++) sum += Math.exp(xs[base + j * inner] - m);
        const lse = m + Math.log(sum);
        for (let j = 0; j < len; j++) {
          const v = xs[base + j * inner];
          r[base + j * inner] = log ? v - lse : Math.exp(v - lse);
        }
      }
    }
    writeNumbers(out, r);
  }

  random(kind: 'uniform' | 'normal', seed: number, out: View): void {
    const n = numel(out.shape);
    const r = new Float64Array(n);
    // a draw just below 1 would round up to 1 in a narrow float: clamp to the dtype's largest value < 1
    const cap = BELOW_ONE[out.storage.dtype] ?? 1;
    for (let i = 0; i < n; i++) r[i] = kind === 'uniform' ? Math.min(uniformAt(seed, i), cap) : normalAt(seed, i);
    writeNumbers(out, r);
  }

  // fused routines: the reference numerics live in fused.ts
  rmsNorm(x: View, weight: View, eps: number, out: View, rstd: View): void {
    F.rmsNormCpu(x, weight, eps, out, rstd);
  }
  rmsNormBackward(x: View, weight: View, rstd: View, gOut: View, gx: View, gw: View): void {
    F.rmsNormBackwardCpu(x, weight, rstd, gOut, gx, gw);
  }
  ropeAppend(q: View, k: View, v: View, cos: View, sin: View, positions: View, qOut: View, kCache: View, vCache: View): void {
    F.ropeCpu(q, cos, sin, false, qOut);
    const kr: View = { storage: this.alloc(k.storage.dtype, numel(k.shape)), shape: k.shape, strides: contiguousStrides(k.shape), offset: 0 };
    try {
      F.ropeCpu(k, cos, sin, false, kr);
      // positions [S] broadcast over [B, KV, S, D] as the index of a scatter along the cache's position axis
      const index: View = { storage: positions.storage, shape: k.shape, strides: [0, 0, positions.strides[0], 0], offset: positions.offset };
      this.scatter(kCache, 2, index, kr);
      this.scatter(vCache, 2, index, v);
    } finally {
      this.free(kr.storage);
    }
  }
  rope(x: View, cos: View, sin: View, inverse: boolean, out: View): void {
    F.ropeCpu(x, cos, sin, inverse, out);
  }
  swiglu(gate: View, up: View, out: View): void {
    F.swigluCpu(gate, up, out);
  }
  swigluBackward(gate: View, up: View, gOut: View, gGate: View, gUp: View): void {
    F.swigluBackwardCpu(gate, up, gOut, gGate, gUp);
  }
  attention(q: View, k: View, v: View, o: AttentionOptions, out: View, lse: View): void {
    F.attentionCpu(q, k, v, o, out, lse);
  }
  attentionBackward(q: View, k: View, v: View, out: View, lse: View, gOut: View, o: AttentionOptions, gq: View, gk: View, gv: View): void {
    F.attentionBackwardCpu(q, k, v, out, lse, gOut, o, gq, gk, gv);
  }
  crossEntropy(logits: View, targets: View, ignoreIndex: number, losses: View, lse: View): void {
    F.crossEntropyCpu(logits, targets, ignoreIndex, losses, lse);
  }
  crossEntropyBackward(logits: View, targets: View, lse: View, gLoss: View, ignoreIndex: number, gLogits: View): void {
    F.crossEntropyBackwardCpu(logits, targets, lse, gLoss, ignoreIndex, gLogits);
  }
  adamw(param: View, grad: View, m: View, v: View, h: AdamWHyper): void {
    F.adamwCpu(param, grad, m, v, h);
  }
  scaledMatmul(a: View, b: View, scaleA: View, scaleB: View, out: View): void {
    F.scaledMatmulCpu(a, b, scaleA, scaleB, out);
  }
}

export const cpuBackend = new CpuBackend();
export type { CpuBackend };
