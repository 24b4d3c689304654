// Matmuls with a few activation rows against Linear weights (x @ W^T with x [..., M <= 8, K]): the batch-1
// decode step and small verification batches. They read the weight once and do little else, so
// kernels/gemv.cu streams it at the HBM rate instead of going through cuBLASLt's GEMM kernels; one launch
// can serve up to three weights sharing the input, fold the residual add or SwiGLU that follows, and fold
// the RMSNorm before it (the input is then the raw residual stream; the kernel normalises it exactly as
// the RMSNorm kernel would, reproducing that kernel's block size and reduction order).
// Taken only for 16-bit floats with everything 16-byte aligned; otherwise the methods return false and
// the caller runs the general ops.

import type { View } from '../backend.js';
import type { DType } from '../../tensor/dtype.js';
import { numel } from '../../tensor/shape.js';
import { KernelArgs, type DevicePtr } from './driver.js';
import { FK, GEMV_NORM_MAX_ROWS } from './fused-kernels.js';
import { asRows, rowThreads, type FusedLauncher, type Rows } from './fused-host.js';

export const GEMV_MAX_ROWS = 8;

/** kernels/gemv.cu MOPT_GEMV_WARPS: output columns per CTA (one warp each) */
const COLUMNS_PER_CTA = 8;
// A cap on the GEMV CTAs per SM (diagnostic, MOPT_GEMV_CTAS_PER_SM; default: as many as fit). A grid that
// fills every SM leaves no room for the next kernel's CTAs, so a programmatic dependent launch
// (MOPT_CUDA_PDL=1) cannot start them, or their L2 prefetch, before this grid ends; fewer CTAs leave room.
const CTAS_PER_SM_CAP = Math.max(1, Math.floor(Number(process.env.MOPT_GEMV_CTAS_PER_SM ?? Infinity) || Infinity));
/** kernels/gemv.cu MOPT_GEMV_SEGS */
export const GEMV_MAX_SEGMENTS = 3;
/** elements per 16-byte chunk */
const CHUNK = 8;

/** gemv.cu GemvLayout then GEMV_MAX_SEGMENTS x GemvSeg: every field an int64 (test/backend/cuda-fused-sources.test.ts checks the order) */
export const GEMV_FIELDS = ['a', 'lda', 'K', 'M', 'mode', 'nseg', 'norm_w', 'norm_eps', 'norm_threads'] as const;
export const GEMV_SEG_FIELDS = ['w', 'ldw', 'out', 'ldo', 'res', 'ldr', 'end'] as const;
const LAYOUT_BYTES = (GEMV_FIELDS.length + GEMV_MAX_SEGMENTS * GEMV_SEG_FIELDS.length) * 8;

/** One weight of a grouped launch: w is the Linear weight [N, K] itself; out (and residual) [rows, N]. */
export interface GemvSegment {
  w: View;
  out: View;
  residual?: View;
}
export type GemvEpilogue = 'none' | 'residual' | 'swiglu';
/** The RMSNorm folded in before the matmul: the input is normalised (weight [K], eps) in the kernel. */
export interface GemvNorm {
  weight: View;
  eps: number;
}
/** Shared memory per SM the GEMV CTAs may share (H100/H200: 228 KB, 1 KB of it reserved per CTA). */
const SMEM_PER_SM = 228 * 1024;
/** Dynamic shared memory a CTA may take without the opt-in attribute. */
const SMEM_DEFAULT_MAX = 48 * 1024;

const aligned = (addr: DevicePtr): boolean => addr % 16 === 0;

export class CudaGemv {
  private readonly args = new KernelArgs([[LAYOUT_BYTES, 8]]);
  /** CTAs of each kernel that fit on the GPU at once (the kernels walk their columns grid-stride) */
  private readonly resident = new Map<string, number>();

  constructor(private readonly l: FusedLauncher) {}

  /** a [..., M, K] @ b [..., K, N] -> out when b is a transposed weight shared by the batch; false otherwise. */
  tryMatmul(a: View, b: View, out: View): boolean {
    const r = b.shape.length;
    if (r < 2 || b.strides[r - 2] !== 1 || b.shape.slice(0, -2).some((s, i) => s !== 1 && b.strides[i] !== 0)) return false;
    const [K, N] = [b.shape[r - 2], b.shape[r - 1]];
    const w: View = { storage: b.storage, shape: [N, K], strides: [b.strides[r - 1], 1], offset: b.offset };
    return this.tryGroup(a, [{ w, out }], 'none');
  }

  /**
   * out_s = a @ w_s^T for each segment (plus residual_s with 'residual'); 'swiglu' takes the gate and up
   * weights as two segments and writes silu(a @ gate^T) * (a @ up^T) to the first segment's out.
   */
  tryGroup(a: View, segs: readonly GemvSegment[], epilogue: GemvEpilogue, norm?: GemvNorm): boolean {
    const d = a.storage.dtype;
    if ((d !== 'bfloat16' && d !== 'float16') || segs.length === 0 || segs.length > GEMV_MAX_SEGMENTS) return false;
    if (epilogue === 'swiglu' && (segs.length !== 2 || segs[0].w.shape[0] !== segs[1].w.shape[0])) return false;
    const rows = asRows(a);
    if (rows === null || rows.rows === 0 || rows.rows > GEMV_MAX_ROWS || rows.colStride !== 1) return false;
    const K = rows.len;
    const lda = rows.rows === 1 ? K : rows.rowStride;
    if (K % CHUNK !== 0 || lda % CHUNK !== 0 || !aligned(this.l.addr(a))) return false;
    // the normalised rows live in shared memory; the norm weight is read 16 bytes at a time
    const smem = norm === undefined ? 0 : rows.rows * K * 2;
    if (norm !== undefined) {
      const nw = norm.weight;
      if (rows.rows > GEMV_NORM_MAX_ROWS || smem > SMEM_DEFAULT_MAX || nw.storage.dtype !== d || nw.shape.length !== 1 || nw.shape[0] !== K || nw.strides[0] !== 1 || !aligned(this.l.addr(nw))) return false;
    }
    const eps = new DataView(new ArrayBuffer(8));
    eps.setFloat64(0, norm?.eps ?? 0, true);
    const fields: number[] = [this.l.addr(a), lda, K, rows.rows, epilogue === 'residual' ? 1 : 0, segs.length];
    const normFields = norm === undefined ? [0n, 0n, 0n] : [BigInt(this.l.addr(norm.weight)), eps.getBigInt64(0, true), BigInt(rowThreads(K))];
    let end = 0;
    for (const s of segs) {
      const seg = this.segment(s, d, rows.rows, K, epilogue === 'residual');
      if (seg === null) return false;
      end += epilogue === 'swiglu' && s !== segs[0] ? 0 : seg.n;
      fields.push(seg.w, seg.ldw, seg.out, seg.ldo, seg.res, seg.ldr, end);
    }
    if (end === 0) return true;
    const words = [...fields.slice(0, 6).map(BigInt), ...normFields, ...fields.slice(6).map(BigInt)];
    while (words.length < LAYOUT_BYTES / 8) words.push(0n);
    const bytes = new Uint8Array(LAYOUT_BYTES);
    const view = new DataView(bytes.buffer);
    words.forEach((v, i) => view.setBigInt64(8 * i, v, true));
    const withNorm = norm !== undefined;
    const kernel = epilogue === 'swiglu' ? FK.gemvSwiglu(d, rows.rows, withNorm) : FK.gemv(d, rows.rows, withNorm);
    const grid = Math.min(Math.ceil(end / COLUMNS_PER_CTA), this.residentCtas(kernel, smem));
    this.l.launch(kernel, [grid, 1, 1], [32 * COLUMNS_PER_CTA, 1, 1], smem, this.args.bytes(0, bytes), true);
    return true;
  }

  /** How many CTAs of a kernel the GPU holds at once, from its register and shared-memory use. */
  private residentCtas(k: Parameters<FusedLauncher['launch']>[0], smem: number): number {
    const key = `${k.name}:${smem}`;
    let n = this.resident.get(key);
    if (n === undefined) {
      const host = this.l.host;
      const regs = Math.ceil(host.driver.functionResources(host.kernels.fn(k)).registers / 8) * 8; // allocated in steps of 8 per thread
      const threads = 32 * COLUMNS_PER_CTA;
      const bySmem = smem === 0 ? Infinity : Math.floor(SMEM_PER_SM / (smem + 1024));
      const perSm = Math.max(1, Math.min(Math.floor(2048 / threads), Math.floor(65536 / (Math.max(1, regs) * threads)), bySmem));
      n = Math.min(perSm, CTAS_PER_SM_CAP) * this.l.smCount;
      this.resident.set(key, n);
    }
    return n;
  }

  /** A segment's addresses and strides, or null when its views do not fit the kernel. */
  private segment(s: GemvSegment, d: DType, m: number, K: number, residual: boolean) {
    const { w, out } = s;
    const N = w.shape[0];
    if (w.storage.dtype !== d || out.storage.dtype !== d || w.shape.length !== 2 || w.shape[1] !== K || w.strides[1] !== 1) return null;
    if ((N > 1 && w.strides[0] % CHUNK !== 0) || !aligned(this.l.addr(w))) return null;
    const o = matrixRows(out, m, N);
    if (o === null) return null;
    let res = 0;
    let ldr = 0;
    if (residual) {
      const r = s.residual === undefined || s.residual.storage.dtype !== d ? null : matrixRows(s.residual, m, N);
      if (r === null || s.residual === undefined) return null;
      res = this.l.addr(s.residual);
      ldr = r.rowStride;
    }
    return { n: N, w: this.l.addr(w), ldw: w.strides[0], out: this.l.addr(out), ldo: o.rowStride, res, ldr };
  }
}

/** v as m rows of n unit-stride elements, or null. */
function matrixRows(v: View, m: number, n: number): Rows | null {
  const r = asRows(v);
  if (r === null || numel(v.shape) !== m * n || r.len !== n || (r.colStride !== 1 && n > 1)) return null;
  return { ...r, rowStride: m === 1 ? n : r.rowStride };
}
