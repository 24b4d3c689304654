// Host side of the kernels' by-value layout structs (kernels/common.cuh Strided, reduce.cu ReduceLayout,
// softmax.cu RowLayout, matmul.cu MatmulLayout): dims are collapsed first (size-1 dims dropped,
// neighbours that are contiguous with each other in every operand merged), so most views reach the
// kernels as rank 1-3 and contiguous ones take the kernels' fast path. Byte offsets below must match
// the C structs field for field (all fields 8-byte aligned, int64 little endian).

import type { View } from '../backend.js';
import { numel } from '../../tensor/shape.js';

export const MAX_DIMS = 8;
const MAX_OPS = 4;
const TWO32 = 2 ** 32;

/** Little-endian struct bytes; int64 fields written as two 32-bit words (exact below 2^53). */
class StructBytes {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  i64(off: number, v: number): this {
    this.view.setUint32(off, v >>> 0, true);
    this.view.setInt32(off + 4, Math.floor(v / TWO32), true);
    return this;
  }
  i32(off: number, v: number): this {
    this.view.setInt32(off, v, true);
    return this;
  }
  i64s(off: number, vs: readonly number[]): this {
    vs.forEach((v, i) => this.i64(off + 8 * i, v));
    return this;
  }
}

export interface Collapsed {
  shape: number[];
  /** strides[k] is operand k's stride per collapsed dim */
  strides: number[][];
}

/** Drops size-1 dims and merges each dim into the previous one where every operand allows it. */
export function collapseDims(shape: readonly number[], strides: readonly (readonly number[])[]): Collapsed {
  const out: Collapsed = { shape: [], strides: strides.map(() => []) };
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d];
    if (size === 1) continue;
    const last = out.shape.length - 1;
    if (last >= 0 && strides.every((s, k) => out.strides[k][last] === s[d] * size)) {
      out.shape[last] *= size;
      strides.forEach((s, k) => (out.strides[k][last] = s[d]));
    } else {
      out.shape.push(size);
      strides.forEach((s, k) => out.strides[k].push(s[d]));
    }
  }
  return out;
}

function checkRank(rank: number, what: string): void {
  if (rank > MAX_DIMS) {
    throw new RangeError(`cuda ${what}: the view has ${rank} dims that cannot be merged; at most ${MAX_DIMS} are supported (make it contiguous first)`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Byte offsets of the C structs' fields, and their sizes; test/backend/cuda-sources.test.ts computes
// them from the sources and compares.

export const STRIDED = { n: 0, base: 8, rank: 16, pad_: 20, shape: 24, offset: 88, stride: 120, SIZE: 376 } as const;
export const REDUCE = {
  n_out: 0, n_red: 8, chunk: 16, out_rank: 24, red_rank: 28, r_fast: 32, pad_: 36, out_shape: 40, x_out_stride: 104,
  o_stride: 168, red_shape: 232, x_red_stride: 296, x_offset: 360, o_offset: 368, SIZE: 376,
} as const;
export const ROW = {
  rows: 0, len: 8, rank: 16, warp_rows: 20, shape: 24, x_stride: 88, o_stride: 152, x_axis_stride: 216, o_axis_stride: 224,
  x_offset: 232, o_offset: 240, SIZE: 248,
} as const;
export const MATMUL = {
  batch: 0, m: 8, n: 16, k: 24, brank: 32, pad_: 36, bshape: 40, a_bstride: 104, b_bstride: 168, o_bstride: 232, a_sm: 296,
  a_sk: 304, b_sk: 312, b_sn: 320, o_sm: 328, o_sn: 336, a_off: 344, b_off: 352, o_off: 360, SIZE: 368,
} as const;

// ---------------------------------------------------------------------------------------------------
// Element-wise launches (common.cuh Strided).

export interface Operand {
  readonly strides: readonly number[];
  readonly offset: number;
}

export interface StridedLaunch {
  readonly bytes: Uint8Array;
  readonly n: number;
}

function stridedBytes(n: number, base: number, shape: readonly number[], strides: readonly (readonly number[])[], offsets: readonly number[]): Uint8Array {
  const F = STRIDED;
  const s = new StructBytes(F.SIZE).i64(F.n, n).i64(F.base, base).i32(F.rank, shape.length).i64s(F.shape, shape).i64s(F.offset, offsets);
  strides.forEach((st, k) => s.i64s(F.stride + 8 * MAX_DIMS * k, st));
  return s.bytes;
}

/**
 * The launches of an element-wise kernel over `shape` whose operands (output first) have the given
 * strides and offsets. One launch normally; a strided one over 2^32 elements or more is split along its
 * outer dims, because the kernels index strided launches with 32-bit arithmetic.
 */
export function stridedLaunches(shape: readonly number[], operands: readonly Operand[]): StridedLaunch[] {
  if (operands.length > MAX_OPS) throw new Error(`at most ${MAX_OPS} operands`);
  const n = numel(shape);
  if (n === 0) return [];
  const c = collapseDims(shape, operands.map((o) => o.strides));
  const offsets = operands.map((o) => o.offset);
  if (c.shape.length === 0 || (c.shape.length === 1 && c.strides.every((s) => s[0] === 1))) {
    return [{ bytes: stridedBytes(n, 0, [], [], offsets), n }]; // contiguous: rank 0 fast path
  }
  checkRank(c.shape.length, 'element-wise op');
  const out: StridedLaunch[] = [];
  const emit = (sh: number[], st: number[][], offs: number[], base: number): void => {
    const count = numel(sh);
    if (count < TWO32) {
      out.push({ bytes: stridedBytes(count, base, sh, st, offs), n: count });
      return;
    }
    const inner = numel(sh.slice(1));
    if (inner < TWO32) {
      const rows = Math.floor((TWO32 - 1) / inner);
      for (let r = 0; r < sh[0]; r += rows) {
        emit([Math.min(rows, sh[0] - r), ...sh.slice(1)], st, offs.map((o, k) => o + r * st[k][0]), base + r * inner);
      }
    } else {
      for (let r = 0; r < sh[0]; r++) {
        emit(sh.slice(1), st.map((s) => s.slice(1)), offs.map((o, k) => o + r * st[k][0]), base + r * inner);
      }
    }
  };
  emit(c.shape, c.strides, offsets, 0);
  return out;
}

/**
 * A bit-pattern copy of `bytes`-wide elements re-expressed with wider words (16, 8 or 4 bytes) when every
 * operand's last dim is unit-stride and each row's run, the other strides and the offsets are whole
 * words: a transposed [B, H, S, D] -> [B, S, H, D] copy then moves 16 bytes per access instead of 2.
 * Returns the shape and operands in words of `word` bytes (unchanged when no wider word fits).
 */
export function widenCopy<O extends Operand>(shape: readonly number[], operands: readonly O[], bytes: number): { shape: number[]; operands: O[]; word: number } {
  const rank = shape.length;
  for (const word of [16, 8, 4]) {
    if (word <= bytes || rank === 0) break;
    const k = word / bytes;
    const fits = shape[rank - 1] % k === 0 && operands.every((o) =>
      o.strides[rank - 1] === 1 && o.offset % k === 0 && o.strides.every((st, d) => d === rank - 1 || shape[d] === 1 || st % k === 0));
    if (!fits) continue;
    return {
      shape: [...shape.slice(0, -1), shape[rank - 1] / k],
      operands: operands.map((o) => ({ ...o, strides: o.strides.map((st, d) => (d === rank - 1 ? 1 : st / k)), offset: o.offset / k })),
      word,
    };
  }
  return { shape: [...shape], operands: [...operands], word: bytes };
}

// ---------------------------------------------------------------------------------------------------
// Reductions (reduce.cu ReduceLayout).

const BLOCK = 256;

export interface ReducePlan {
  readonly bytes: Uint8Array;
  readonly nOut: number;
  readonly grid: [number, number, number];
  readonly block: [number, number, number];
  /** gridDim.y: partial accumulators per output (1: the kernel writes the outputs itself) */
  readonly splits: number;
}

const pow2AtLeast = (v: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, v)));

/** Plans a reduction of x over `axes` into out (x's shape with those axes of size 1). */
export function reducePlan(x: View, axes: readonly number[], out: View, smCount: number): ReducePlan {
  const keptDims = x.shape.map((_, d) => d).filter((d) => !axes.includes(d));
  const kept = collapseDims(keptDims.map((d) => x.shape[d]), [keptDims.map((d) => x.strides[d]), keptDims.map((d) => out.strides[d])]);
  const red = collapseDims(axes.map((d) => x.shape[d]), [axes.map((d) => x.strides[d])]);
  checkRank(kept.shape.length, 'reduce');
  checkRank(red.shape.length, 'reduce');
  const nOut = numel(kept.shape);
  const nRed = numel(red.shape);
  const redInner = red.strides[0].at(-1);
  const keptInner = kept.strides[0].at(-1);
  // threads of a warp should read neighbouring addresses: walk the reduction when it is the contiguous dim
  const rFast = redInner === 1 || (keptInner !== 1 && nRed >= 32);
  const lanes = rFast ? Math.min(BLOCK, pow2AtLeast(nRed)) : Math.min(8, pow2AtLeast(nRed));
  const slots = BLOCK / lanes;
  const blocksX = Math.max(1, Math.min(Math.ceil(nOut / slots), smCount * 32));
  let splits = 1;
  if (blocksX < 2 * smCount && nRed > lanes * 32) {
    splits = Math.min(Math.ceil((4 * smCount) / blocksX), Math.ceil(nRed / (lanes * 32)), 65535);
  }
  const chunk = Math.max(1, Math.ceil(nRed / splits));
  splits = Math.max(1, Math.ceil(nRed / chunk));
  const F = REDUCE;
  const s = new StructBytes(F.SIZE)
    .i64(F.n_out, nOut).i64(F.n_red, nRed).i64(F.chunk, chunk)
    .i32(F.out_rank, kept.shape.length).i32(F.red_rank, red.shape.length).i32(F.r_fast, rFast ? 1 : 0)
    .i64s(F.out_shape, kept.shape).i64s(F.x_out_stride, kept.strides[0]).i64s(F.o_stride, kept.strides[1])
    .i64s(F.red_shape, red.shape).i64s(F.x_red_stride, red.strides[0])
    .i64(F.x_offset, x.offset).i64(F.o_offset, out.offset);
  const block: [number, number, number] = rFast ? [lanes, slots, 1] : [slots, lanes, 1];
  return { bytes: s.bytes, nOut, grid: [blocksX, splits, 1], block, splits };
}

// ---------------------------------------------------------------------------------------------------
// Softmax rows (softmax.cu RowLayout).

export interface RowPlan {
  readonly bytes: Uint8Array;
  readonly grid: [number, number, number];
  readonly block: [number, number, number];
}

export function rowPlan(x: View, axis: number, out: View, smCount: number): RowPlan | null {
  const others = x.shape.map((_, d) => d).filter((d) => d !== axis);
  const c = collapseDims(others.map((d) => x.shape[d]), [others.map((d) => x.strides[d]), others.map((d) => out.strides[d])]);
  checkRank(c.shape.length, 'softmax');
  const rows = numel(c.shape);
  const len = x.shape[axis];
  if (rows === 0 || len === 0) return null;
  const warpRows = len <= 1024; // a warp per short row; a block of 256 threads per long one
  const perBlock = warpRows ? BLOCK / 32 : 1;
  const F = ROW;
  const s = new StructBytes(F.SIZE)
    .i64(F.rows, rows).i64(F.len, len).i32(F.rank, c.shape.length).i32(F.warp_rows, warpRows ? 1 : 0)
    .i64s(F.shape, c.shape).i64s(F.x_stride, c.strides[0]).i64s(F.o_stride, c.strides[1])
    .i64(F.x_axis_stride, x.strides[axis]).i64(F.o_axis_stride, out.strides[axis]).i64(F.x_offset, x.offset).i64(F.o_offset, out.offset);
  return { bytes: s.bytes, grid: [Math.min(Math.ceil(rows / perBlock), smCount * 32), 1, 1], block: [BLOCK, 1, 1] };
}

// ---------------------------------------------------------------------------------------------------
// Fallback matmul (matmul.cu MatmulLayout).

export interface MatmulPlan {
  readonly bytes: Uint8Array;
  readonly grid: [number, number, number];
  readonly block: [number, number, number];
}

/** a [..., m, k] @ b [..., k, n] -> out [..., m, n], batch dims already broadcast to out's. */
export function matmulPlan(a: View, b: View, out: View): MatmulPlan | null {
  const r = out.shape.length;
  const [m, n, k] = [out.shape[r - 2], out.shape[r - 1], a.shape[r - 1]];
  const batchShape = out.shape.slice(0, r - 2);
  const c = collapseDims(batchShape, [a.strides.slice(0, r - 2), b.strides.slice(0, r - 2), out.strides.slice(0, r - 2)]);
  checkRank(c.shape.length, 'matmul');
  const batch = numel(c.shape);
  if (batch === 0 || m === 0 || n === 0) return null;
  const F = MATMUL;
  const s = new StructBytes(F.SIZE)
    .i64(F.batch, batch).i64(F.m, m).i64(F.n, n).i64(F.k, k).i32(F.brank, c.shape.length)
    .i64s(F.bshape, c.shape).i64s(F.a_bstride, c.strides[0]).i64s(F.b_bstride, c.strides[1]).i64s(F.o_bstride, c.strides[2])
    .i64(F.a_sm, a.strides[r - 2]).i64(F.a_sk, a.strides[r - 1]).i64(F.b_sk, b.strides[r - 2]).i64(F.b_sn, b.strides[r - 1])
    .i64(F.o_sm, out.strides[r - 2]).i64(F.o_sn, out.strides[r - 1])
    .i64(F.a_off, a.offset).i64(F.b_off, b.offset).i64(F.o_off, out.offset);
  const grid: [number, number, number] = [Math.min(Math.ceil(n / 64), 2 ** 31 - 1), Math.min(Math.ceil(m / 64), 65535), Math.min(batch, 65535)];
  return { bytes: s.bytes, grid, block: [256, 1, 1] };
}
