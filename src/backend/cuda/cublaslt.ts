// GEMM through cuBLASLt for the CUDA backend. mopt tensors are row-major; cuBLASLt is column-major, so
// out[m,n] = a[m,k] @ b[k,n] is computed as out^T[n,m] = b^T[n,k] @ a^T[k,m]: a row-major matrix read
// column-major is its own transpose, so no data moves. Transposed views (x @ W^T) become op=T.
// Descriptors and the heuristic's algorithm are cached per problem shape.

import type { View } from '../backend.js';
import type { CudaDriver, DevicePtr, Handle } from './driver.js';
import { loadCudaLibrary } from './find-libs.js';
import { DTYPE_INFO, type DType } from '../../tensor/dtype.js';

type Fn = (...args: unknown[]) => number;

// enum values from cublasLt.h / cublas_api.h / library_types.h of CUDA 13.0
const DESC_TRANSA = 3;
const DESC_TRANSB = 4;
const DESC_A_SCALE_POINTER = 17;
const DESC_B_SCALE_POINTER = 18;
const CUDA_R_8F_E4M3 = 28;
const CUDA_R_32F = 0;
const CUDA_R_16BF = 14;
const LAYOUT_BATCH_COUNT = 5;
const LAYOUT_STRIDED_BATCH_OFFSET = 6;
const PREF_MAX_WORKSPACE_BYTES = 1;
const OP_N = 0;
const OP_T = 1;
const HEURISTIC_RESULT_BYTES = 96; // algo (64) + workspaceSize (8) + state (4) + wavesCount (4) + reserved (16)

const TYPES: Partial<Record<DType, { data: number; compute: number; scale: 'f32' | 'f64' }>> = {
  float32: { data: 0, compute: 68 /* CUBLAS_COMPUTE_32F: no TF32 */, scale: 'f32' },
  float16: { data: 2, compute: 68, scale: 'f32' },
  bfloat16: { data: 14, compute: 68, scale: 'f32' },
  float64: { data: 1, compute: 70, scale: 'f64' },
};

/**
 * How float32 GEMMs compute, named as torch.set_float32_matmul_precision names them: 'highest' (the default)
 * multiplies in float32 (CUBLAS_COMPUTE_32F), 'high' lets cuBLASLt round the inputs to TF32 (10-bit mantissa)
 * and use tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32) at ~1e-4..1e-3 relative error (its speed is not measured
 * in docs/benchmarks.md).
 */
export type Float32MatmulPrecision = 'highest' | 'high';
export const FLOAT32_MATMUL_PRECISIONS: readonly Float32MatmulPrecision[] = ['highest', 'high'];
const COMPUTE_32F_FAST_TF32 = 77;

/** Something that can multiply two device views into a contiguous output; false = cannot, use a fallback. */
export interface Gemm {
  /** float32 GEMMs' arithmetic (the default 'highest': float32) */
  float32Precision: Float32MatmulPrecision;
  matmul(a: View, b: View, out: View): boolean;
  /** FP8 e4m3 a [M,K] row-major times b [K,N] (transposed weight view) with device float32 scale scalars */
  scaledMatmul?(a: View, b: View, scaleA: DevicePtr, scaleB: DevicePtr, out: View): boolean;
}

/** A 2-D matrix window: row-major (ld = row stride) or transposed (column-major, ld = column stride). */
interface MatrixLayout {
  trans: boolean;
  ld: number;
}

function matrixLayout(rows: number, cols: number, sRow: number, sCol: number): MatrixLayout | null {
  if (cols === 1 || sCol === 1) {
    const ld = rows === 1 ? cols : sRow;
    return ld >= cols ? { trans: false, ld: Math.max(1, ld) } : null;
  }
  if (rows === 1 || sRow === 1) {
    const ld = cols === 1 ? rows : sCol;
    return ld >= rows ? { trans: true, ld: Math.max(1, ld) } : null;
  }
  return null;
}

/** One stride that walks all batch dims in order (0 = broadcast), or null when they do not collapse. */
function batchStride(shape: readonly number[], strides: readonly number[], rank: number): number | null {
  let stride: number | null = null;
  let inner = 1;
  for (let d = rank - 3; d >= 0; d--) {
    if (shape[d] === 1) continue;
    const s = strides[d];
    if (stride === null) stride = inner === 1 ? s : s / inner;
    if (s !== stride * inner) return null;
    inner *= shape[d];
  }
  return stride ?? 0;
}

interface Plan {
  desc: Handle;
  aDesc: Handle;
  bDesc: Handle;
  cDesc: Handle;
  algo: Uint8Array;
}

export class CublasLt implements Gemm {
  float32Precision: Float32MatmulPrecision = 'highest';
  private readonly f: Record<string, Fn> = {};
  private readonly handle: Handle;
  private readonly plans = new Map<string, Plan | null>();
  private readonly one32 = new Float32Array([1]);
  private readonly zero32 = new Float32Array([0]);
  private readonly one64 = new Float64Array([1]);
  private readonly zero64 = new Float64Array([0]);

  constructor(
    private readonly driver: CudaDriver,
    private readonly workspace: DevicePtr,
    private readonly workspaceBytes: number,
    private readonly addressOf: (v: View) => DevicePtr,
  ) {
    const lib = loadCudaLibrary('the cuBLASLt library libcublasLt.so', ['libcublasLt.so'], 'install the CUDA toolkit (or the nvidia-cublas wheel) or run with --device cpu');
    const decls: Record<string, string> = {
      cublasLtCreate: 'int cublasLtCreate(_Out_ void **handle)',
      cublasLtGetStatusString: 'const char *cublasLtGetStatusString(int status)',
      cublasLtMatmulDescCreate: 'int cublasLtMatmulDescCreate(_Out_ void **desc, int computeType, int scaleType)',
      cublasLtMatmulDescSetAttribute: 'int cublasLtMatmulDescSetAttribute(void *desc, int attr, const void *buf, uint64_t size)',
      cublasLtMatrixLayoutCreate: 'int cublasLtMatrixLayoutCreate(_Out_ void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld)',
      cublasLtMatrixLayoutSetAttribute: 'int cublasLtMatrixLayoutSetAttribute(void *layout, int attr, const void *buf, uint64_t size)',
      cublasLtMatmulPreferenceCreate: 'int cublasLtMatmulPreferenceCreate(_Out_ void **pref)',
      cublasLtMatmulPreferenceSetAttribute: 'int cublasLtMatmulPreferenceSetAttribute(void *pref, int attr, const void *buf, uint64_t size)',
      cublasLtMatmulAlgoGetHeuristic:
        'int cublasLtMatmulAlgoGetHeuristic(void *handle, void *op, void *a, void *b, void *c, void *d, void *pref, int requested, _Out_ uint8_t *results, _Out_ int *count)',
      cublasLtMatmul:
        'int cublasLtMatmul(void *handle, void *desc, const void *alpha, uint64_t a, void *adesc, uint64_t b, void *bdesc, const void *beta, uint64_t c, void *cdesc, uint64_t d, void *ddesc, const void *algo, uint64_t ws, uint64_t wsSize, void *stream)',
    };
    for (const [name, decl] of Object.entries(decls)) this.f[name] = lib.func(decl) as Fn;
    const h: unknown[] = [null];
    this.check('cublasLtCreate', this.f.cublasLtCreate(h));
    this.handle = h[0];
  }

  private check(call: string, status: number): void {
    if (status !== 0) {
      const msg = (this.f.cublasLtGetStatusString as unknown as (s: number) => string)(status);
      throw new Error(`${call} failed: ${msg} (cublasStatus ${status})`);
    }
  }

  matmul(a: View, b: View, out: View): boolean {
    const dtype = out.storage.dtype;
    const base = TYPES[dtype];
    if (base === undefined || a.storage.dtype !== dtype || b.storage.dtype !== dtype) return false;
    const t = dtype === 'float32' && this.float32Precision === 'high' ? { ...base, compute: COMPUTE_32F_FAST_TF32 } : base;
    const r = out.shape.length;
    const m = out.shape[r - 2];
    const n = out.shape[r - 1];
    const k = a.shape[r - 1];
    if (m === 0 || n === 0) return true;
    if (k === 0) return false;
    const la = matrixLayout(m, k, a.strides[r - 2], a.strides[r - 1]);
    const lb = matrixLayout(k, n, b.strides[r - 2], b.strides[r - 1]);
    const sa = batchStride(a.shape, a.strides, r);
    const sb = batchStride(b.shape, b.strides, r);
    const so = batchStride(out.shape, out.strides, r);
    if (la === null || lb === null || sa === null || sb === null || so === null) return false;
    if (out.strides[r - 1] !== 1 || (m > 1 && out.strides[r - 2] !== n)) return false;
    let batch = 1;
    for (let d = 0; d < r - 2; d++) batch *= out.shape[d];
    const key = `${dtype}/${t.compute}|${m},${n},${k}|${la.trans ? 'T' : 'N'}${la.ld}|${lb.trans ? 'T' : 'N'}${lb.ld}|${batch}|${sa},${sb},${so}`;
    let plan = this.plans.get(key);
    if (plan === undefined) {
      plan = this.makePlan(t, m, n, k, la, lb, batch, sa, sb, so === 0 ? m * n : so);
      this.plans.set(key, plan);
    }
    if (plan === null) return false;
    const [alpha, beta] = t.scale === 'f64' ? [this.one64, this.zero64] : [this.one32, this.zero32];
    const c = this.addressOf(out);
    this.driver.profiled(`cublasLt ${dtype} ${m}x${n}x${k}${batch > 1 ? ` b${batch}` : ''}`, () =>
      this.check(
        'cublasLtMatmul',
        this.f.cublasLtMatmul(
          this.handle, plan.desc, alpha,
          this.addressOf(b), plan.aDesc, this.addressOf(a), plan.bDesc,
          beta, c, plan.cDesc, c, plan.cDesc,
          plan.algo, this.workspace, this.workspaceBytes, this.driver.stream,
        ),
      ),
    );
    return true;
  }

  /**
   * FP8 GEMM: out = (a * sa) @ (b * sb) with a [M,K] e4m3 row-major and b [K,N] e4m3 as the transposed view
   * of a row-major [N,K] weight — the "TN" layout Hopper's FP8 tensor cores require. Scales are device
   * float32 scalars (cuBLASLt multiplies them in). False when the shapes or layouts do not fit.
   */
  scaledMatmul(a: View, b: View, scaleA: DevicePtr, scaleB: DevicePtr, out: View): boolean {
    const outType = out.storage.dtype === 'float32' ? CUDA_R_32F : out.storage.dtype === 'bfloat16' ? CUDA_R_16BF : null;
    if (outType === null || a.storage.dtype !== 'float8_e4m3fn' || b.storage.dtype !== 'float8_e4m3fn') return false;
    if (a.shape.length !== 2 || b.shape.length !== 2 || out.shape.length !== 2) return false;
    const [m, k] = a.shape;
    const n = b.shape[1];
    // a row-major with contiguous rows; b a transposed view (column stride k); FP8 wants 16-byte leading dims
    if (a.strides[1] !== 1 || a.strides[0] !== k || b.strides[0] !== 1 || b.strides[1] !== k || k % 16 !== 0) return false;
    if (out.strides[1] !== 1 || out.strides[0] !== n) return false;
    const key = `fp8|${m},${n},${k}|${outType}`;
    let plan = this.plans.get(key);
    if (plan === undefined) {
      plan = this.makeFp8Plan(m, n, k, outType);
      this.plans.set(key, plan);
    }
    if (plan === null) return false;
    // cuBLAS "A" is our b (op T over its stored [k, n] column-major = the weight), "B" is our a (op N)
    this.check('cublasLtMatmulDescSetAttribute', this.f.cublasLtMatmulDescSetAttribute(plan.desc, DESC_A_SCALE_POINTER, new BigUint64Array([BigInt(scaleB)]), 8));
    this.check('cublasLtMatmulDescSetAttribute', this.f.cublasLtMatmulDescSetAttribute(plan.desc, DESC_B_SCALE_POINTER, new BigUint64Array([BigInt(scaleA)]), 8));
    const c = this.addressOf(out);
    this.driver.profiled(`cublasLt fp8 ${m}x${n}x${k}`, () =>
      this.check(
        'cublasLtMatmul',
        this.f.cublasLtMatmul(
          this.handle, plan.desc, this.one32, this.addressOf(b), plan.aDesc, this.addressOf(a), plan.bDesc,
          this.zero32, c, plan.cDesc, c, plan.cDesc, plan.algo, this.workspace, this.workspaceBytes, this.driver.stream,
        ),
      ),
    );
    return true;
  }

  private makeFp8Plan(m: number, n: number, k: number, outType: number): Plan | null {
    const d: unknown[] = [null];
    this.check('cublasLtMatmulDescCreate', this.f.cublasLtMatmulDescCreate(d, 68 /* COMPUTE_32F */, CUDA_R_32F));
    this.check('cublasLtMatmulDescSetAttribute', this.f.cublasLtMatmulDescSetAttribute(d[0], DESC_TRANSA, new Int32Array([OP_T]), 4));
    this.check('cublasLtMatmulDescSetAttribute', this.f.cublasLtMatmulDescSetAttribute(d[0], DESC_TRANSB, new Int32Array([OP_N]), 4));
    const aDesc = this.layout(CUDA_R_8F_E4M3, k, n, k, 1, 0);
    const bDesc = this.layout(CUDA_R_8F_E4M3, k, m, k, 1, 0);
    const cDesc = this.layout(outType, n, m, n, 1, 0);
    return this.heuristic(d[0], aDesc, bDesc, cDesc);
  }

  private layout(type: number, rows: number, cols: number, ld: number, batch: number, stride: number): Handle {
    const l: unknown[] = [null];
    this.check('cublasLtMatrixLayoutCreate', this.f.cublasLtMatrixLayoutCreate(l, type, rows, cols, ld));
    if (batch > 1) {
      this.check('cublasLtMatrixLayoutSetAttribute', this.f.cublasLtMatrixLayoutSetAttribute(l[0], LAYOUT_BATCH_COUNT, new Int32Array([batch]), 4));
      this.check('cublasLtMatrixLayoutSetAttribute', this.f.cublasLtMatrixLayoutSetAttribute(l[0], LAYOUT_STRIDED_BATCH_OFFSET, new BigInt64Array([BigInt(stride)]), 8));
    }
    return l[0];
  }

  private makePlan(
    t: { data: number; compute: number; scale: 'f32' | 'f64' }, m: number, n: number, k: number,
    la: MatrixLayout, lb: MatrixLayout, batch: number, sa: number, sb: number, so: number,
  ): Plan | null {
    const d: unknown[] = [null];
    this.check('cublasLtMatmulDescCreate', this.f.cublasLtMatmulDescCreate(d, t.compute, t.scale === 'f64' ? 1 : 0));
    // cuBLAS "A" is our b (n x k after op), "B" is our a (k x m after op)
    const opA = lb.trans ? OP_T : OP_N;
    const opB = la.trans ? OP_T : OP_N;
    this.check('cublasLtMatmulDescSetAttribute', this.f.cublasLtMatmulDescSetAttribute(d[0], DESC_TRANSA, new Int32Array([opA]), 4));
    this.check('cublasLtMatmulDescSetAttribute', this.f.cublasLtMatmulDescSetAttribute(d[0], DESC_TRANSB, new Int32Array([opB]), 4));
    const aDesc = opA === OP_N ? this.layout(t.data, n, k, lb.ld, batch, sb) : this.layout(t.data, k, n, lb.ld, batch, sb);
    const bDesc = opB === OP_N ? this.layout(t.data, k, m, la.ld, batch, sa) : this.layout(t.data, m, k, la.ld, batch, sa);
    const cDesc = this.layout(t.data, n, m, n, batch, so);
    return this.heuristic(d[0], aDesc, bDesc, cDesc);
  }

  /** The best algorithm cuBLASLt's heuristic offers for these descriptors within the workspace, or null. */
  private heuristic(desc: Handle, aDesc: Handle, bDesc: Handle, cDesc: Handle): Plan | null {
    const p: unknown[] = [null];
    this.check('cublasLtMatmulPreferenceCreate', this.f.cublasLtMatmulPreferenceCreate(p));
    this.check(
      'cublasLtMatmulPreferenceSetAttribute',
      this.f.cublasLtMatmulPreferenceSetAttribute(p[0], PREF_MAX_WORKSPACE_BYTES, new BigUint64Array([BigInt(this.workspaceBytes)]), 8),
    );
    const results = new Uint8Array(HEURISTIC_RESULT_BYTES);
    const count = [0];
    const status = this.f.cublasLtMatmulAlgoGetHeuristic(this.handle, desc, aDesc, bDesc, cDesc, cDesc, p[0], 1, results, count);
    if (status !== 0 || count[0] === 0) return null;
    return { desc, aDesc, bDesc, cDesc, algo: results.slice(0, 64) };
  }
}

/** Byte address of a view's first element, given its storage's base pointer. */
export function viewAddress(base: DevicePtr, v: View): DevicePtr {
  return base + v.offset * DTYPE_INFO[v.storage.dtype].bytes;
}
