// Batched matmul for the CPU reference backend: out[b] = a[b] @ b[b], float64 accumulation.
// Each batch's operands are packed into contiguous rows first so the inner loop is unit-stride.

import type { View } from '../backend.js';
import { readNumbers, writeNumbers } from './strided.js';
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

/** Packs a [rows, cols] window starting at `base` into a contiguous Float64Array. */
function pack(base: number, rows: number, cols: number, rs: number, cs: number, src: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = base + r * rs;
    for (let c = 0; c < cols; c++) out[r * cols + c] = src[o + c * cs];
  }
  return out;
}

export function matmulCpu(a: View, b: View, out: View): void {
  const rank = out.shape.length;
  const m = out.shape[rank - 2];
  const n = out.shape[rank - 1];
  const k = a.shape[rank - 1];
  const batchRank = rank - 2;
  // Read operands through a logical-order copy whose strides we know: [.., rows, cols] contiguous over
  // the non-broadcast extent. For simplicity read each operand fully (broadcast batch dims included
  // only once, because stride-0 batch dims are collapsed below).
  const aView = collapseBroadcast(a, batchRank);
  const bView = collapseBroadcast(b, batchRank);
  const aNums = readNumbers(aView.view);
  const bNums = readNumbers(bView.view);
  const aBatch = batchOffsets(out.shape, aView.batchStrides, batchRank);
  const bBatch = batchOffsets(out.shape, bView.batchStrides, batchRank);
  const result = new Float64Array(numel(out.shape));
  const acc = new Float64Array(n);
  for (let bi = 0; bi < aBatch.length; bi++) {
    const A = pack(aBatch[bi], m, k, k, 1, aNums);
    const B = pack(bBatch[bi], k, n, n, 1, bNums);
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let p = 0; p < k; p++) {
        const av = A[i * k + p];
        if (av === 0) continue;
        const row = p * n;
        for (let j = 0; j < n; j++) acc[j] += av * B[row + j];
      }
      result.set(acc, (bi * m + i) * n);
    }
  }
  writeNumbers(out, result);
}

/**
 * Materialising a broadcast operand would copy it once per batch; instead read the view with its
 * broadcast (stride-0) batch dims squeezed to size 1 and address batches with contiguous strides
 * in which those dims have stride 0.
 */
function collapseBroadcast(v: View, batchRank: number): { view: View; batchStrides: number[] } {
  const shape = v.shape.map((d, i) => (i < batchRank && v.strides[i] === 0 ? 1 : d));
  const view: View = { storage: v.storage, shape, strides: v.strides, offset: v.offset };
  // strides of the logical-order copy produced by readNumbers
  const contig = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    contig[i] = s;
    s *= shape[i];
  }
  const batchStrides = contig.slice(0, batchRank).map((st, i) => (shape[i] === 1 ? 0 : st));
  return { view, batchStrides };
}
