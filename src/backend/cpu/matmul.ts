// Batched matmul for the CPU reference backend: out[b] = a[b] @ b[b], float64 accumulation.
// Two loop orders: when b's matrix is the transpose of a row-major matrix (x @ W^T, the Linear case)
// each output is a dot product of two contiguous rows; otherwise b is packed row-major and rows of
// the output are accumulated as scaled rows of b.

import type { View } from '../backend.js';
import { readNumbers, writeNumbers, directOutput } from './strided.js';
import { numel } from '../../tensor/shape.js';

function batchOffsets(shape: readonly number[], strides: readonly number[], batchRank: number): Int32Array {
  const n = numel(shape.slice(0, batchRank));
  const out = new Int32Array(n);
  const idx = new Array<number>(batchRank).fill(0);
  for (let i = 0; i < n; i++) {
    let off = 0;
    for (let d = 0; d < batchRank; d++) off += idx[d] * strides[d];
    out[i] = off;
    for (let d = batchRank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** The view with broadcast (stride-0) batch dims squeezed to 1, so they are read once, not per batch. */
function collapseBroadcast(v: View, batchRank: number, swapLast: boolean): { view: View; batchStrides: number[] } {
  let shape = v.shape.map((d, i) => (i < batchRank && v.strides[i] === 0 ? 1 : d));
  let strides = [...v.strides];
  if (swapLast) {
    // read the transposed matrix in its own row-major order
    const r = shape.length;
    shape = [...shape.slice(0, r - 2), shape[r - 1], shape[r - 2]];
    strides = [...strides.slice(0, r - 2), strides[r - 1], strides[r - 2]];
  }
  const view: View = { storage: v.storage, shape, strides, offset: v.offset };
  const contig = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    contig[i] = s;
    s *= shape[i];
  }
  return { view, batchStrides: contig.slice(0, batchRank).map((st, i) => (shape[i] === 1 ? 0 : st)) };
}

type Nums = Float32Array | Float64Array;

/** a[i, :] . bt[j, :] as the reference sums it: even and odd p in two float64 partial sums, tail into the even one. */
function dot(a: Nums, ar: number, b: Nums, br: number, k: number): number {
  let s0 = 0;
  let s1 = 0;
  let p = 0;
  for (; p + 1 < k; p += 2) {
    s0 += a[ar + p] * b[br + p];
    s1 += a[ar + p + 1] * b[br + p + 1];
  }
  if (p < k) s0 += a[ar + p] * b[br + p];
  return s0 + s1;
}

/**
 * out[i, j] = dot(a[i, :], bt[j, :]) for the m x n outputs, two rows of a against two rows of bt at a time:
 * each loaded element feeds two products, which halves the loads per multiply-add, and every output keeps
 * exactly the summation order of dot(), so the result is the same to the last bit.
 */
function dotRows(a: Nums, ao: number, b: Nums, bo: number, out: Float32Array | Float64Array, co: number, m: number, n: number, k: number): void {
  const m2 = m - (m % 2);
  const n2 = n - (n % 2);
  const kEven = k - (k % 2);
  for (let i = 0; i < m2; i += 2) {
    const a0 = ao + i * k;
    const a1 = a0 + k;
    for (let j = 0; j < n2; j += 2) {
      const b0 = bo + j * k;
      const b1 = b0 + k;
      let s00e = 0, s00o = 0, s01e = 0, s01o = 0, s10e = 0, s10o = 0, s11e = 0, s11o = 0;
      for (let p = 0; p < kEven; p += 2) {
        const x0 = a[a0 + p], x0o = a[a0 + p + 1], x1 = a[a1 + p], x1o = a[a1 + p + 1];
        const y0 = b[b0 + p], y0o = b[b0 + p + 1], y1 = b[b1 + p], y1o = b[b1 + p + 1];
        s00e += x0 * y0;
        s00o += x0o * y0o;
        s01e += x0 * y1;
        s01o += x0o * y1o;
        s10e += x1 * y0;
        s10o += x1o * y0o;
        s11e += x1 * y1;
        s11o += x1o * y1o;
      }
      if (kEven < k) {
        const p = kEven;
        s00e += a[a0 + p] * b[b0 + p];
        s01e += a[a0 + p] * b[b1 + p];
        s10e += a[a1 + p] * b[b0 + p];
        s11e += a[a1 + p] * b[b1 + p];
      }
      const r0 = co + i * n + j;
      out[r0] = s00e + s00o;
      out[r0 + 1] = s01e + s01o;
      out[r0 + n] = s10e + s10o;
      out[r0 + n + 1] = s11e + s11o;
    }
    if (n2 < n) {
      out[co + i * n + n2] = dot(a, a0, b, bo + n2 * k, k);
      out[co + (i + 1) * n + n2] = dot(a, a1, b, bo + n2 * k, k);
    }
  }
  if (m2 < m) for (let j = 0; j < n; j++) out[co + m2 * n + j] = dot(a, ao + m2 * k, b, bo + j * k, k);
}

export function matmulCpu(a: View, b: View, out: View): void {
  const rank = out.shape.length;
  const m = out.shape[rank - 2];
  const n = out.shape[rank - 1];
  const k = a.shape[rank - 1];
  const batchRank = rank - 2;
  // b is "transposed" when its rows are strided and its columns contiguous (a transpose view)
  const bT = b.strides[rank - 2] === 1 && (b.strides[rank - 1] === k || n === 1) && k > 1;
  const A = collapseBroadcast(a, batchRank, false);
  const B = collapseBroadcast(b, batchRank, bT);
  const aNums = readNumbers(A.view);
  const bNums = readNumbers(B.view);
  const aBatch = batchOffsets(out.shape, A.batchStrides, batchRank);
  const bBatch = batchOffsets(out.shape, B.batchStrides, batchRank);
  const direct = directOutput(out);
  const result = direct ?? new Float64Array(numel(out.shape));
  const acc = new Float64Array(n);
  for (let bi = 0; bi < aBatch.length; bi++) {
    const ao = aBatch[bi];
    const bo = bBatch[bi];
    const co = bi * m * n;
    if (bT) {
      dotRows(aNums, ao, bNums, bo, result, co, m, n, k);
    } else {
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        const ar = ao + i * k;
        for (let p = 0; p < k; p++) {
          // no skipping of zero entries: 0 * inf must stay NaN
          const av = aNums[ar + p];
          const row = bo + p * n;
          for (let j = 0; j < n; j++) acc[j] += av * bNums[row + j];
        }
        for (let j = 0; j < n; j++) result[co + i * n + j] = acc[j];
      }
    }
  }
  if (direct === null) writeNumbers(out, result);
}
