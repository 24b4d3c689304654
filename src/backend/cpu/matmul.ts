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
      // out[i, j] = dot(a[i, :], bt[j, :])
      for (let i = 0; i < m; i++) {
        const ar = ao + i * k;
        for (let j = 0; j < n; j++) {
          const br = bo + j * k;
          let s0 = 0;
          let s1 = 0;
          let p = 0;
          for (; p + 1 < k; p += 2) {
            s0 += aNums[ar + p] * bNums[br + p];
            s1 += aNums[ar + p + 1] * bNums[br + p + 1];
          }
          if (p < k) s0 += aNums[ar + p] * bNums[br + p];
          result[co + i * n + j] = s0 + s1;
        }
      }
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
