// The CUDA backend: device storage from the caching allocator, kernels from kernels/*.cu (compiled by
// NVRTC on first use), all work on the driver's one stream. Results match the CPU reference backend
// (src/backend/cpu) bit for bit, except float32 transcendentals (a few ulp) and accumulations (sums,
// softmax, matmul, scatterAdd onto repeated indices), whose rounding depends on order and precision.
// (op, dtype) pairs without a kernel of their own (fp8, int16/int8/uint8/bool arithmetic) run through
// float64 temporaries, which is exactly the CPU's float64 arithmetic with one rounding.

import type { AdamWHyper, AttentionOptions, Backend, BinaryOp, CompareOp, DecodeStepKernel, DecodeStepSpec, FusedDecode, FusedKernels, GroupedLinear, LinearSegment, ReduceOp, Storage, UnaryOp, View } from '../backend.js';
import { allocStorage, DTYPE_INFO, type DType, type StorageArray } from '../../tensor/dtype.js';
import { contiguousStrides, isContiguous, numel } from '../../tensor/shape.js';
import { KernelArgs, type CudaDriver, type DevicePtr } from './driver.js';
import type { Nvrtc } from './nvrtc.js';
import { CachingAllocator, type DeviceBlock } from './allocator.js';
import { COMPUTE_DTYPES, K, KernelLoader, type AccDType, type IndexDType, type KernelRef } from './kernels.js';
import { MATMUL, REDUCE, ROW, STRIDED, matmulPlan, reducePlan, rowPlan, stridedLaunches, widenCopy } from './layout.js';
import { CudaFused } from './fused.js';
import { captureGraph, type CapturedGraph } from './graph.js';

import type { Float32MatmulPrecision, Gemm } from './cublaslt.js';
import { UserError } from '../../util/errors.js';
export type { Gemm };

export class CudaStorage implements Storage {
  refs = 0;
  freed = false;
  constructor(
    readonly backend: CudaBackend,
    readonly dtype: DType,
    readonly length: number,
    readonly block: DeviceBlock,
  ) {}
  /** device address of element 0 */
  get ptr(): DevicePtr {
    return this.block.ptr;
  }
  get bytes(): number {
    return this.length * DTYPE_INFO[this.dtype].bytes;
  }
}

/** An operand of an element-wise launch: a device pointer with strides over the launch's shape. */
interface Operand {
  ptr: DevicePtr;
  strides: readonly number[];
  offset: number;
}

const BLOCK = 256;
const NO_ERROR = 0xffffffffffffffffn;
const ONE_BYTE_CONDITIONS: readonly DType[] = ['bool', 'uint8', 'int8'];
const F32_ACC_SRC: readonly DType[] = ['float32', 'float16', 'bfloat16'];
const F32_ACC_OUT: readonly DType[] = ['float32', 'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2'];

export class CudaBackend implements Backend, FusedKernels, GroupedLinear, FusedDecode {
  readonly name = 'cuda';
  readonly kernels: KernelLoader;
  private live = 0;
  private readonly smCount: number;
  /** the device error word of the index kernels (smallest bad position, all ones when none) */
  private readonly errWord: DeviceBlock;
  /** fill fresh allocations with 0xff bytes (NaN / -1) to expose reads of uninitialised memory */
  private readonly poison = process.env.MOPT_CUDA_POISON === '1';

  // one argument block per launch site, rewritten per call (cuLaunchKernel copies it at launch). Every
  // kernel's parameter list ends on an 8-byte boundary: cuLaunchKernel rejects a buffer size that
  // includes tail padding, and KernelArgs rounds its size up to 8.
  private readonly args = {
    ew2: new KernelArgs([[STRIDED.SIZE, 8], 8, 8]),
    ew3: new KernelArgs([[STRIDED.SIZE, 8], 8, 8, 8]),
    ew4: new KernelArgs([[STRIDED.SIZE, 8], 8, 8, 8, 8]),
    fill: new KernelArgs([[STRIDED.SIZE, 8], 8, 8]),
    random: new KernelArgs([[STRIDED.SIZE, 8], 8, 8]),
    gather: new KernelArgs([[STRIDED.SIZE, 8], 8, 8, 8, 8, 8, 8]),
    check: new KernelArgs([[STRIDED.SIZE, 8], 8, 8, 8]),
    scatter: new KernelArgs([[STRIDED.SIZE, 8], 8, 8, 8, 8, 8]),
    reduce: new KernelArgs([[REDUCE.SIZE, 8], 8, 8, 8]),
    finish: new KernelArgs([[REDUCE.SIZE, 8], 8, 8, 8]),
    softmax: new KernelArgs([[ROW.SIZE, 8], 8, 8]),
    matmul: new KernelArgs([[MATMUL.SIZE, 8], 8, 8, 8]),
  };

  constructor(
    readonly driver: CudaDriver,
    nvrtc: Nvrtc,
    readonly allocator: CachingAllocator = new CachingAllocator(driver),
    private readonly gemmImpl: Gemm | null = null,
  ) {
    const [major, minor] = driver.info.computeCapability;
    this.kernels = new KernelLoader(driver, nvrtc, `${major}${minor}`);
    this.smCount = driver.info.smCount;
    this.errWord = allocator.alloc(8);
  }

  // ---- memory ---------------------------------------------------------------------------------

  alloc(dtype: DType, length: number): Storage {
    const block = this.allocator.alloc(length * DTYPE_INFO[dtype].bytes);
    if (this.poison) this.driver.memsetD8(block.ptr, 0xff, block.size);
    this.live++;
    return new CudaStorage(this, dtype, length, block);
  }
  free(storage: Storage): void {
    if (storage.freed) return;
    storage.freed = true;
    this.allocator.free((storage as CudaStorage).block);
    this.live--;
  }
  /** number of storages allocated and not yet freed (for leak tests) */
  liveStorages(): number {
    return this.live;
  }
  fromHost(dtype: DType, data: StorageArray): Storage {
    const s = this.alloc(dtype, data.length) as CudaStorage;
    this.driver.htod(s.ptr, data);
    return s;
  }
  toHost(view: View): StorageArray {
    const dtype = view.storage.dtype;
    const out = allocStorage(dtype, numel(view.shape));
    if (out.length === 0) return out;
    if (isContiguous(view.shape, view.strides)) {
      this.driver.dtoh(out, this.ptrOf(view) + view.offset * DTYPE_INFO[dtype].bytes);
      return out;
    }
    this.withTemp(dtype, view.shape, (t) => {
      this.copy(view, t);
      this.driver.dtoh(out, this.ptrOf(t));
    });
    return out;
  }
  /** true while a CUDA graph is being recorded (graph.ts): index errors cannot be read back then */
  get capturing(): boolean {
    return this.driver.capturing;
  }
  /** Records the device work `record` queues into a replayable CUDA graph (graph.ts). */
  captureGraph(record: () => void): CapturedGraph {
    return captureGraph(this.driver, this.allocator, record);
  }

  /** Waits for all queued work; errors of asynchronous kernels surface here. */
  synchronize(): void {
    this.driver.synchronize();
  }

  // ---- element-wise ---------------------------------------------------------------------------

  copy(src: View, out: View): void {
    const sd = src.storage.dtype;
    const od = out.storage.dtype;
    if (sd === od) {
      // same dtype: move bit patterns, never values (NaN payloads, int64 beyond 2^53)
      const bytes = DTYPE_INFO[sd].bytes;
      if (isContiguous(src.shape, src.strides) && isContiguous(out.shape, out.strides)) {
        this.driver.dtod(this.ptrOf(out) + out.offset * bytes, this.ptrOf(src) + src.offset * bytes, numel(out.shape) * bytes);
      } else {
        const w = widenCopy(out.shape, [this.op(out), this.op(src)], bytes);
        this.elementwise(K.copyRaw(w.word), this.args.ew2, w.shape, w.operands);
      }
      return;
    }
    const direct = K.convert(sd, od);
    if (direct !== null) this.elementwise(direct, this.args.ew2, out.shape, [this.op(out), this.op(src)]);
    else this.withTemp('float64', src.shape, (t) => (this.copy(src, t), this.copy(t, out))); // exact via float64
  }

  fill(out: View, value: number): void {
    this.elementwise(K.fill(out.storage.dtype), this.args.fill, out.shape, [this.op(out)], (a) => a.f64(2, value));
  }

  unary(op: UnaryOp, x: View, out: View): void {
    const k = K.unary(op, x.storage.dtype);
    if (k !== null) this.elementwise(k, this.args.ew2, out.shape, [this.op(out), this.op(x)]);
    else this.viaF64([x], ([t]) => this.intoF64(out, (o) => this.unary(op, t, o)));
  }

  binary(op: BinaryOp, a: View, b: View, out: View): void {
    const k = K.binary(op, a.storage.dtype);
    if (k !== null) this.elementwise(k, this.args.ew3, out.shape, [this.op(out), this.op(a), this.op(b)]);
    else this.viaF64([a, b], ([ta, tb]) => this.intoF64(out, (o) => this.binary(op, ta, tb, o)));
  }

  compare(op: CompareOp, a: View, b: View, out: View): void {
    const k = K.compare(op, a.storage.dtype);
    if (k !== null) this.elementwise(k, this.args.ew3, out.shape, [this.op(out), this.op(a), this.op(b)]);
    else this.viaF64([a, b], ([ta, tb]) => this.compare(op, ta, tb, out));
  }

  where(cond: View, a: View, b: View, out: View): void {
    if (!ONE_BYTE_CONDITIONS.includes(cond.storage.dtype)) {
      // the kernel tests one byte per element; other dtypes become bool first (x != 0, NaN -> true)
      this.withTemp('bool', cond.shape, (c) => (this.copy(cond, c), this.where(c, a, b, out)));
      return;
    }
    const k = K.where(out.storage.dtype);
    this.elementwise(k, this.args.ew4, out.shape, [this.op(out), this.op(cond), this.op(a), this.op(b)]);
  }

  random(kind: 'uniform' | 'normal', seed: number, out: View): void {
    // seed >>> 0 as the CPU's uniformAt reduces it
    this.elementwise(K.random(kind, out.storage.dtype), this.args.random, out.shape, [this.op(out)], (a) => a.i64(2, seed >>> 0));
  }

  // ---- reductions -----------------------------------------------------------------------------

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
    const dt = x.storage.dtype;
    const k = K.reduce(op, dt);
    if (k === null) this.viaF64([x], ([t]) => this.intoF64(out, (o) => this.reduce(op, t, axes, o)));
    else this.runReduce(k, K.reduce(op, dt, true)!, x, axes, out);
  }

  argmax(x: View, axis: number, out: View): void {
    const dt = x.storage.dtype;
    const k = K.argmax(dt);
    if (k === null) this.viaF64([x], ([t]) => this.argmax(t, axis, out));
    else this.runReduce(k, K.argmax(dt, true)!, x, [axis], out);
  }

  softmax(x: View, axis: number, out: View): void {
    this.rowwise(x, axis, out, false);
  }
  logSoftmax(x: View, axis: number, out: View): void {
    this.rowwise(x, axis, out, true);
  }

  private rowwise(x: View, axis: number, out: View, log: boolean): void {
    const k = K.softmax(x.storage.dtype, log);
    if (k === null) {
      this.viaF64([x], ([t]) => this.intoF64(out, (o) => this.rowwise(t, axis, o, log)));
      return;
    }
    const plan = rowPlan(x, axis, out, this.smCount);
    if (plan === null) return;
    const a = this.args.softmax.bytes(0, plan.bytes).ptr(1, this.ptrOf(out)).ptr(2, this.ptrOf(x));
    this.launch(k, plan.grid, plan.block, a);
  }

  private runReduce(k: KernelRef, finish: KernelRef, x: View, axes: readonly number[], out: View): void {
    const plan = reducePlan(x, axes, out, this.smCount);
    if (plan.nOut === 0) return;
    // partial accumulators of split reductions: at most 16 bytes each (argmax's value + index)
    const partial = plan.splits > 1 ? this.allocator.alloc(plan.nOut * plan.splits * 16) : null;
    try {
      const a = this.args.reduce.bytes(0, plan.bytes).ptr(1, this.ptrOf(out)).ptr(2, this.ptrOf(x)).ptr(3, partial?.ptr ?? 0);
      this.launch(k, plan.grid, plan.block, a);
      if (partial !== null) {
        const f = this.args.finish.bytes(0, plan.bytes).ptr(1, this.ptrOf(out)).ptr(2, partial.ptr).i64(3, plan.splits);
        this.launch(finish, [Math.min(plan.nOut, this.smCount * 16), 1, 1], [BLOCK, 1, 1], f); // a block per output
      }
    } finally {
      if (partial !== null) this.allocator.free(partial); // stream order keeps it alive for the kernels
    }
  }

  // ---- matmul ---------------------------------------------------------------------------------

  matmul(a: View, b: View, out: View): void {
    if (this.fused.gemv.tryMatmul(a, b, out) || this.gemm(a, b, out)) return;
    const k = K.matmul(a.storage.dtype);
    if (k === null) {
      this.viaF64([a, b], ([ta, tb]) => this.intoF64(out, (o) => this.matmul(ta, tb, o)));
      return;
    }
    const plan = matmulPlan(a, b, out);
    if (plan === null) return;
    const args = this.args.matmul.bytes(0, plan.bytes).ptr(1, this.ptrOf(out)).ptr(2, this.ptrOf(a)).ptr(3, this.ptrOf(b));
    this.launch(k, plan.grid, plan.block, args);
  }

  /** Grouped few-row Linears with an epilogue (gemv.ts); false when the views do not fit its kernels. */
  linearGroup(x: View, segments: readonly LinearSegment[], epilogue: 'none' | 'residual' | 'swiglu', norm?: { weight: View; eps: number }): boolean {
    return this.fused.gemv.tryGroup(x, segments, epilogue, norm);
  }

  /** A whole batch-1 decode step as one kernel (decode-step.ts); null when the model does not fit it. */
  decodeStep(spec: DecodeStepSpec): DecodeStepKernel | null {
    return this.fused.decodeSteps.prepare(spec);
  }

  /**
   * float32 matmuls on TF32 tensor cores ('high') or in float32 ('highest', the default), as
   * torch.set_float32_matmul_precision; applies to cuBLASLt GEMMs only (the decode GEMVs, attention and the
   * fallback matmul kernel stay float32). MOPT_FLOAT32_MATMUL_PRECISION sets it for a whole process.
   */
  setFloat32MatmulPrecision(p: Float32MatmulPrecision): void {
    if (this.gemmImpl !== null) this.gemmImpl.float32Precision = p;
  }

  float32MatmulPrecision(): Float32MatmulPrecision {
    return this.gemmImpl?.float32Precision ?? 'highest';
  }

  /** The injected GEMM (cuBLASLt); false when there is none or it declines the case. */
  gemm(a: View, b: View, out: View): boolean {
    return this.gemmImpl?.matmul(a, b, out) ?? false;
  }

  // ---- indexing -------------------------------------------------------------------------------

  gather(x: View, axis: number, index: View, out: View): void {
    this.withIndex(index, (idx, idt) => {
      const size = x.shape[axis];
      // x is addressed over the index's shape; its coordinate on `axis` comes from the index
      const xs = x.strides.map((s, d) => (d === axis ? 0 : s));
      const k = K.gather(DTYPE_INFO[x.storage.dtype].bytes, idt);
      this.resetError();
      this.elementwise(k, this.args.gather, index.shape, [this.op(out), this.op(idx), { ptr: this.ptrOf(x), strides: xs, offset: x.offset }], (a) =>
        a.i64(4, size).i64(5, x.strides[axis]).ptr(6, this.errWord.ptr),
      );
      this.throwIndexError('gather', idx, size);
    });
  }

  scatterAdd(out: View, axis: number, index: View, src: View): void {
    this.withIndex(index, (idx, idt) => {
      const size = out.shape[axis];
      // every index is checked before anything is added, so `out` is untouched on error (as on the CPU)
      this.resetError();
      this.elementwise(K.indexCheck(idt), this.args.check, index.shape, [this.op(idx)], (a) => a.i64(2, size).ptr(3, this.errWord.ptr));
      this.throwIndexError('scatterAdd', idx, size);
      if (!COMPUTE_DTYPES.includes(src.storage.dtype)) {
        this.viaF64([src], ([s]) => this.scatterInto(out, axis, idx, idt, s));
      } else {
        this.scatterInto(out, axis, idx, idt, src);
      }
    });
  }

  scatter(out: View, axis: number, index: View, src: View): void {
    if (src.storage.dtype !== out.storage.dtype) throw new TypeError(`scatter: src is ${src.storage.dtype}, out is ${out.storage.dtype}`);
    this.withIndex(index, (idx, idt) => {
      const size = out.shape[axis];
      this.resetError();
      if (!this.capturing) {
        this.elementwise(K.indexCheck(idt), this.args.check, index.shape, [this.op(idx)], (a) => a.i64(2, size).ptr(3, this.errWord.ptr));
        this.throwIndexError('scatter', idx, size);
      }
      const ts = out.strides.map((s, d) => (d === axis ? 0 : s));
      const k = K.scatter(DTYPE_INFO[out.storage.dtype].bytes, idt);
      this.elementwise(k, this.args.gather, idx.shape, [{ ptr: this.ptrOf(out), strides: ts, offset: out.offset }, this.op(idx), this.op(src)], (a) =>
        a.i64(4, size).i64(5, out.strides[axis]).ptr(6, this.errWord.ptr),
      );
    });
  }

  /** Atomically adds src into out: in place when out is float32/float64, else via an accumulator copy. */
  private scatterInto(out: View, axis: number, idx: View, idt: IndexDType, src: View): void {
    const sd = src.storage.dtype;
    const od = out.storage.dtype;
    const acc: AccDType = F32_ACC_SRC.includes(sd) && F32_ACC_OUT.includes(od) ? 'float32' : 'float64';
    const run = (target: View): void => {
      const ts = target.strides.map((s, d) => (d === axis ? 0 : s));
      this.elementwise(K.scatterAdd(sd, idt, acc)!, this.args.scatter, idx.shape, [{ ptr: this.ptrOf(target), strides: ts, offset: target.offset }, this.op(idx), this.op(src)], (a) =>
        a.i64(4, out.shape[axis]).i64(5, target.strides[axis]),
      );
    };
    if (od === acc) {
      run(out);
      return;
    }
    // each output element is rounded once, after all its additions (the CPU sums in float64)
    this.withTemp(acc, out.shape, (t) => {
      this.copy(out, t);
      run(t);
      this.copy(t, out);
    });
  }

  /** Runs fn with an int32/int64 index view (other integer dtypes converted to int32, as the CPU reads them). */
  private withIndex(index: View, fn: (idx: View, idt: IndexDType) => void): void {
    const d = index.storage.dtype;
    if (d === 'int32' || d === 'int64') fn(index, d);
    else this.withTemp('int32', index.shape, (t) => (this.copy(index, t), fn(t, 'int32')));
  }

  private resetError(): void {
    if (this.capturing) return; // nothing reads the word back during a capture: spare the graph a node
    this.driver.memsetD8(this.errWord.ptr, 0xff, 8);
  }

  /** Reads the error word (this synchronizes) and throws the CPU's RangeError for the first bad index. */
  private throwIndexError(op: string, idx: View, size: number): void {
    if (this.capturing) return; // the kernels still never touch memory out of bounds
    const word = new BigUint64Array(1);
    this.driver.dtoh(word, this.errWord.ptr);
    if (word[0] === NO_ERROR) return;
    let pos = Number(word[0]);
    let off = idx.offset;
    for (let d = idx.shape.length - 1; d >= 0; d--) {
      off += (pos % idx.shape[d]) * idx.strides[d];
      pos = Math.floor(pos / idx.shape[d]);
    }
    const dt = idx.storage.dtype;
    const value = allocStorage(dt, 1);
    this.driver.dtoh(value, this.ptrOf(idx) + off * DTYPE_INFO[dt].bytes);
    const v = Number(value[0]);
    throw new RangeError(`${op}: index ${v < 0 ? v + size : v} is out of bounds for a dimension of size ${size}`);
  }

  // ---- fused routines: src/backend/cuda/fused.ts ---------------------------------------------

  private fusedImpl: CudaFused | null = null;
  private get fused(): CudaFused {
    return (this.fusedImpl ??= new CudaFused(this, (v) => this.ptrOf(v)));
  }
  rmsNorm(x: View, weight: View, eps: number, out: View, rstd: View): void { this.fused.rmsNorm(x, weight, eps, out, rstd); }
  rmsNormBackward(x: View, weight: View, rstd: View, gOut: View, gx: View, gw: View): void { this.fused.rmsNormBackward(x, weight, rstd, gOut, gx, gw); }
  rope(x: View, cos: View, sin: View, inverse: boolean, out: View): void { this.fused.rope(x, cos, sin, inverse, out); }
  ropeAppend(q: View, k: View, v: View, cos: View, sin: View, positions: View, qOut: View, kCache: View, vCache: View): void { this.fused.ropeAppend(q, k, v, cos, sin, positions, qOut, kCache, vCache); }
  swiglu(gate: View, up: View, out: View): void { this.fused.swiglu(gate, up, out); }
  swigluBackward(gate: View, up: View, gOut: View, gGate: View, gUp: View): void { this.fused.swigluBackward(gate, up, gOut, gGate, gUp); }
  attention(q: View, k: View, v: View, o: AttentionOptions, out: View, lse: View): void { this.fused.attention(q, k, v, o, out, lse); }
  attentionBackward(q: View, k: View, v: View, out: View, lse: View, gOut: View, o: AttentionOptions, gq: View, gk: View, gv: View): void { this.fused.attentionBackward(q, k, v, out, lse, gOut, o, gq, gk, gv); }
  crossEntropy(logits: View, targets: View, ignoreIndex: number, losses: View, lse: View): void { this.fused.crossEntropy(logits, targets, ignoreIndex, losses, lse); }
  crossEntropyBackward(logits: View, targets: View, lse: View, gLoss: View, ignoreIndex: number, gLogits: View): void { this.fused.crossEntropyBackward(logits, targets, lse, gLoss, ignoreIndex, gLogits); }
  adamw(param: View, grad: View, m: View, v: View, h: AdamWHyper): void { this.fused.adamw(param, grad, m, v, h); }
  scaledMatmul(a: View, b: View, scaleA: View, scaleB: View, out: View): void {
    if (this.gemmImpl?.scaledMatmul?.(a, b, this.ptrOf(scaleA), this.ptrOf(scaleB), out)) return;
    throw new UserError(
      `FP8 matmul on ${this.driver.info.name} (sm_${this.driver.info.computeCapability.join('')}) needs cuBLASLt with FP8 support (sm_89 or newer) and a K that is a multiple of 16; got a ${a.shape.join('x')} by ${b.shape.join('x')} product`,
    );
  }

  // ---- plumbing -------------------------------------------------------------------------------

  private ptrOf(v: View): DevicePtr {
    const s = v.storage;
    if (!(s instanceof CudaStorage) || s.backend !== this) throw new Error(`cuda: got a tensor of backend "${s.backend.name}"`);
    if (s.freed) throw new Error('cuda: use of freed storage');
    return s.ptr;
  }

  private op(v: View): Operand {
    return { ptr: this.ptrOf(v), strides: v.strides, offset: v.offset };
  }

  private gridFor(n: number): number {
    return Math.max(1, Math.min(Math.ceil(n / BLOCK), this.smCount * 16));
  }

  private launch(k: KernelRef, grid: readonly [number, number, number], block: readonly [number, number, number], args: KernelArgs): void {
    this.driver.launch(this.kernels.fn(k), grid, block, 0, args, k.name);
  }

  /**
   * Launches an element-wise kernel over `shape`: argument 0 is the layout, 1.. the operands' pointers
   * (output first), then whatever `rest` writes.
   */
  private elementwise(k: KernelRef, args: KernelArgs, shape: readonly number[], ops: readonly Operand[], rest?: (a: KernelArgs) => void): void {
    const launches = stridedLaunches(shape, ops);
    if (launches.length === 0) return;
    ops.forEach((o, i) => args.ptr(i + 1, o.ptr));
    rest?.(args);
    for (const l of launches) {
      args.bytes(0, l.bytes);
      this.launch(k, [this.gridFor(l.n), 1, 1], [BLOCK, 1, 1], args);
    }
  }

  /** Runs fn with a contiguous temporary of the given dtype and shape, freed afterwards. */
  private withTemp(dtype: DType, shape: readonly number[], fn: (t: View) => void): void {
    const t: View = { storage: this.alloc(dtype, numel(shape)), shape: [...shape], strides: contiguousStrides(shape), offset: 0 };
    try {
      fn(t);
    } finally {
      this.free(t.storage); // stream order keeps it alive for the kernels already queued
    }
  }

  /** Runs fn on float64 versions of the inputs (exact copies; int64 rounds like the CPU's Number()). */
  private viaF64(inputs: readonly View[], fn: (ins: View[]) => void, done: View[] = []): void {
    if (done.length === inputs.length) {
      fn(done);
      return;
    }
    const v = inputs[done.length];
    if (v.storage.dtype === 'float64') this.viaF64(inputs, fn, [...done, v]);
    else this.withTemp('float64', v.shape, (t) => (this.copy(v, t), this.viaF64(inputs, fn, [...done, t])));
  }

  /** Runs fn with a float64 output, then rounds it once into `out`. */
  private intoF64(out: View, fn: (o: View) => void): void {
    if (out.storage.dtype === 'float64') fn(out);
    else this.withTemp('float64', out.shape, (t) => (fn(t), this.copy(t, out)));
  }
}
