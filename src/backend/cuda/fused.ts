// The fused routines on CUDA (backend.ts FusedKernels): RMSNorm, RoPE, SwiGLU, cross-entropy and AdamW
// launched here, attention in fused-attention.ts. Kernels live in kernels/{rmsnorm,pointwise,
// cross_entropy}.cu; the numerics are those of the CPU reference (src/backend/cpu/fused.ts), see each
// kernel file for where they can differ.
//
// Views: the element-wise routines (RoPE, SwiGLU, AdamW) take any strides (layout.ts stridedLaunches);
// the row routines (RMSNorm, cross-entropy) take views whose leading dims collapse to one row stride and
// copy others to a contiguous temporary first. Inputs of another dtype than the routine's (a float32
// weight for bfloat16 activations, int16 targets) are converted into temporaries too. The fused kernels
// exist for float64, float32, float16 and bfloat16; other dtypes throw.

import type { AdamWHyper, AttentionOptions, FusedKernels, View } from '../backend.js';
import { DTYPE_INFO, type DType } from '../../tensor/dtype.js';
import { isContiguous, numel, shapeStr } from '../../tensor/shape.js';
import { KernelArgs, type DevicePtr } from './driver.js';
import type { IndexDType, KernelRef } from './kernels.js';
import { STRIDED, stridedLaunches, type Operand } from './layout.js';
import { FK, isFusedDType, type FusedDType } from './fused-kernels.js';
import { FusedLauncher, POINTWISE_BLOCK, rowThreads, type FusedHost, type Temps } from './fused-host.js';
import { CudaAttention } from './fused-attention.js';
import { CudaDecodeSteps } from './decode-step.js';
import { CudaGemv } from './gemv.js';

const P = 8; // a pointer, int64 or double argument

/** pointwise.cu RopeAppendLayout: every field an int64, in this order (test/backend/cuda-fused-sources.test.ts checks it) */
export const ROPE_APPEND_FIELDS = [
  'B', 'H', 'KV', 'S', 'D', 'cap',
  'q', 'q_sb', 'q_sh', 'q_ss', 'k', 'k_sb', 'k_sh', 'k_ss', 'v', 'v_sb', 'v_sh', 'v_ss',
  'cos', 'c_s', 'sin', 's_s', 'pos', 'qo', 'kc', 'vc', 'c_sb', 'c_sh', 'c_st',
] as const;
const STRIDED_ARG: readonly [number, number] = [STRIDED.SIZE, 8];

/** float32 accumulation (and side outputs) for the 16/32-bit floats, float64 for float64 */
const accOf = (d: FusedDType): 'float32' | 'float64' => (d === 'float64' ? 'float64' : 'float32');

function fusedDType(op: string, v: View): FusedDType {
  const d = v.storage.dtype;
  if (!isFusedDType(d)) throw new Error(`cuda ${op}: ${d} tensors are not supported (float32, float16, bfloat16 or float64)`);
  return d;
}

function expectDType(op: string, what: string, v: View, d: DType): void {
  if (v.storage.dtype !== d) throw new Error(`cuda ${op}: ${what} must be ${d}, got ${v.storage.dtype}`);
}

export class CudaFused implements Omit<FusedKernels, 'scaledMatmul'> {
  private readonly l: FusedLauncher;
  private readonly attn: CudaAttention;
  readonly gemv: CudaGemv;
  readonly decodeSteps: CudaDecodeSteps;
  // one argument block per launch site, rewritten per call (cuLaunchKernel copies it at launch)
  private readonly args = {
    rmsNorm: new KernelArgs(Array<number>(10).fill(P)),
    rmsNormBwd: new KernelArgs(Array<number>(13).fill(P)),
    rmsNormGw: new KernelArgs(Array<number>(4).fill(P)),
    rope: new KernelArgs([STRIDED_ARG, ...Array<number>(11).fill(P)]),
    swiglu: new KernelArgs([STRIDED_ARG, P, P, P]),
    swigluBwd: new KernelArgs([STRIDED_ARG, P, P, P, P, P]),
    adamw: new KernelArgs([STRIDED_ARG, ...Array<number>(11).fill(P)]),
    ce: new KernelArgs(Array<number>(10).fill(P)),
    ceBwd: new KernelArgs(Array<number>(13).fill(P)),
    ropeAppend: new KernelArgs([[ROPE_APPEND_FIELDS.length * 8, 8]]),
  };

  constructor(host: FusedHost, storagePtr: (v: View) => DevicePtr) {
    this.l = new FusedLauncher(host, storagePtr);
    this.attn = new CudaAttention(this.l);
    this.gemv = new CudaGemv(this.l);
    this.decodeSteps = new CudaDecodeSteps(this.l);
  }

  // ---- RMSNorm ------------------------------------------------------------------------------------

  rmsNorm(x: View, weight: View, eps: number, out: View, rstd: View): void {
    const d = fusedDType('rmsNorm', x);
    expectDType('rmsNorm', 'out', out, d);
    expectDType('rmsNorm', 'rstd', rstd, 'float32');
    this.l.withTemps((t) => {
      const { view: xv, rows: r } = t.rows(x);
      if (r.rows === 0) return;
      const w = t.usable(weight, true, d);
      const a = this.args.rmsNorm
        .ptr(0, this.l.addr(out)).ptr(1, this.l.addr(rstd)).ptr(2, this.l.addr(xv)).ptr(3, this.l.addr(w))
        .i64(4, r.rows).i64(5, r.len).i64(6, r.rowStride).i64(7, r.colStride).i64(8, w.strides[0] ?? 1).f64(9, eps);
      this.l.launch(FK.rmsNorm(d), [this.l.grid(r.rows, 1), 1, 1], [rowThreads(r.len), 1, 1], 0, a);
    });
  }

  rmsNormBackward(x: View, weight: View, rstd: View, gOut: View, gx: View, gw: View): void {
    const d = fusedDType('rmsNormBackward', x);
    expectDType('rmsNormBackward', 'gx', gx, d);
    expectDType('rmsNormBackward', 'gw', gw, d);
    this.l.withTemps((t) => {
      const { view: xv, rows: r } = t.rows(x);
      if (r.rows === 0 || r.len === 0) {
        this.l.host.fill(gw, 0); // no rows: the weight gradient is an empty sum
        return;
      }
      const { view: gv, rows: gr } = t.rows(gOut, d);
      const w = t.usable(weight, true, d);
      const rs = t.usable(rstd, asContiguous(rstd), 'float32');
      const accBytes = DTYPE_INFO[accOf(d)].bytes;
      // per-block column sums of g * xhat, summed by rms_norm_gw (deterministic: no atomics)
      const parts = Math.min(r.rows, this.l.smCount * 2);
      const partial = t.scratch(parts * r.len * accBytes);
      const a = this.args.rmsNormBwd
        .ptr(0, this.l.addr(gx)).ptr(1, partial).ptr(2, this.l.addr(xv)).ptr(3, this.l.addr(w)).ptr(4, this.l.addr(rs)).ptr(5, this.l.addr(gv))
        .i64(6, r.rows).i64(7, r.len).i64(8, r.rowStride).i64(9, r.colStride).i64(10, gr.rowStride).i64(11, gr.colStride).i64(12, w.strides[0] ?? 1);
      this.l.launch(FK.rmsNormBwd(d), [parts, 1, 1], [rowThreads(r.len), 1, 1], r.len * accBytes, a);
      const f = this.args.rmsNormGw.ptr(0, this.l.addr(gw)).ptr(1, partial).i64(2, parts).i64(3, r.len);
      this.l.launch(FK.rmsNormGw(d), [this.l.grid(r.len, POINTWISE_BLOCK), 1, 1], [POINTWISE_BLOCK, 1, 1], 0, f);
    });
  }

  // ---- element-wise routines ------------------------------------------------------------------------

  rope(x: View, cos: View, sin: View, inverse: boolean, out: View): void {
    const d = fusedDType('rope', x);
    expectDType('rope', 'out', out, d);
    const td = fusedDType('rope', cos);
    const rank = x.shape.length;
    if (rank < 2 || x.shape[rank - 1] % 2 !== 0) throw new RangeError(`cuda rope: x ${shapeStr(x.shape)} must be [..., S, D] with D even`);
    const half = x.shape[rank - 1] / 2;
    const seq = x.shape[rank - 2];
    this.l.withTemps((t) => {
      const s = t.usable(sin, true, td);
      // each launch element rotates `per` adjacent pairs (j, j + D/2): operands out_lo, out_hi, x_lo, x_hi;
      // 16 bytes of them when both views' columns are unit-stride and every row starts 16-byte aligned
      const per = 16 / DTYPE_INFO[d].bytes;
      const vec = half % per === 0 && [out, x].every((v) => v.strides[rank - 1] === 1 && v.offset % per === 0 && v.strides.every((st, i) => i === rank - 1 || v.shape[i] === 1 || st % per === 0));
      const step = vec ? per : 1;
      const lanes = (v: View): Operand => ({ strides: v.strides.map((st, i) => (i === rank - 1 ? st * step : st)), offset: v.offset });
      const shift = (v: View): Operand => ({ ...lanes(v), offset: v.offset + half * v.strides[rank - 1] });
      const shape = [...x.shape.slice(0, -1), half / step];
      const a = this.args.rope
        .ptr(1, this.l.base(out)).ptr(2, this.l.base(x)).ptr(3, this.l.addr(cos)).ptr(4, this.l.addr(s))
        .i64(5, half).i64(6, seq).i64(7, cos.strides[0]).i64(8, cos.strides[1]).i64(9, s.strides[0]).i64(10, s.strides[1]).f64(11, inverse ? -1 : 1);
      this.pointwise(vec ? FK.ropeVec(d, td) : FK.rope(d, td), a, shape, [lanes(out), shift(out), lanes(x), shift(x)]);
    });
  }

  ropeAppend(q: View, k: View, v: View, cos: View, sin: View, positions: View, qOut: View, kCache: View, vCache: View): void {
    const d = fusedDType('ropeAppend', q);
    for (const [what, x] of [['k', k], ['v', v], ['qOut', qOut], ['kCache', kCache], ['vCache', vCache]] as const) expectDType('ropeAppend', what, x, d);
    expectDType('ropeAppend', 'positions', positions, 'int32');
    const td = fusedDType('ropeAppend', cos);
    const [B, H, S, D] = q.shape;
    const [, KV] = k.shape;
    if (kCache.strides.some((s, i) => s !== vCache.strides[i]) || !isContiguous(qOut.shape, qOut.strides)) {
      throw new Error('cuda ropeAppend: the K and V caches must share strides and qOut must be contiguous');
    }
    if (B * H * S * D === 0) return;
    this.l.withTemps((t) => {
      const unit = (x: View, dt: DType = d): View => t.usable(x, x.strides[x.shape.length - 1] === 1, dt);
      const [qv, kv, vv, c, s] = [unit(q), unit(k), unit(v), unit(cos, td), unit(sin, td)];
      const pos = t.usable(positions, isContiguous(positions.shape, positions.strides));
      const f: Record<(typeof ROPE_APPEND_FIELDS)[number], number> = {
        B, H, KV, S, D, cap: kCache.shape[2],
        q: this.l.addr(qv), q_sb: qv.strides[0], q_sh: qv.strides[1], q_ss: qv.strides[2],
        k: this.l.addr(kv), k_sb: kv.strides[0], k_sh: kv.strides[1], k_ss: kv.strides[2],
        v: this.l.addr(vv), v_sb: vv.strides[0], v_sh: vv.strides[1], v_ss: vv.strides[2],
        cos: this.l.addr(c), c_s: c.strides[0], sin: this.l.addr(s), s_s: s.strides[0], pos: this.l.addr(pos), qo: this.l.addr(qOut),
        kc: this.l.addr(kCache), vc: this.l.addr(vCache), c_sb: kCache.strides[0], c_sh: kCache.strides[1], c_st: kCache.strides[2],
      };
      const bytes = new Uint8Array(ROPE_APPEND_FIELDS.length * 8);
      const view = new DataView(bytes.buffer);
      ROPE_APPEND_FIELDS.forEach((name, i) => view.setBigInt64(8 * i, BigInt(f[name]), true));
      const n = B * (H + 2 * KV) * S * (D / 2);
      this.l.launch(FK.ropeAppend(d, td), [this.l.grid(n, POINTWISE_BLOCK), 1, 1], [POINTWISE_BLOCK, 1, 1], 0, this.args.ropeAppend.bytes(0, bytes), true);
    });
  }

  swiglu(gate: View, up: View, out: View): void {
    const d = fusedDType('swiglu', gate);
    expectDType('swiglu', 'out', out, d);
    this.l.withTemps((t) => {
      const u = t.usable(up, true, d);
      const a = this.args.swiglu.ptr(1, this.l.base(out)).ptr(2, this.l.base(gate)).ptr(3, this.l.base(u));
      this.pointwise(FK.swiglu(d), a, out.shape, [out, gate, u]);
    });
  }

  swigluBackward(gate: View, up: View, gOut: View, gGate: View, gUp: View): void {
    const d = fusedDType('swigluBackward', gate);
    expectDType('swigluBackward', 'gGate', gGate, d);
    expectDType('swigluBackward', 'gUp', gUp, d);
    this.l.withTemps((t) => {
      const u = t.usable(up, true, d);
      const g = t.usable(gOut, true, d);
      // gUp is a fresh contiguous output: the kernel indexes it by the logical element index
      const gu = t.usable(gUp, asContiguous(gUp));
      const a = this.args.swigluBwd.ptr(1, this.l.base(gGate)).ptr(2, this.l.base(gate)).ptr(3, this.l.base(u)).ptr(4, this.l.base(g)).ptr(5, this.l.addr(gu));
      this.pointwise(FK.swigluBwd(d), a, gGate.shape, [gGate, gate, u, g]);
      if (gu !== gUp) this.l.host.copy(gu, gUp);
    });
  }

  adamw(param: View, grad: View, m: View, v: View, h: AdamWHyper): void {
    const d = fusedDType('adamw', param);
    expectDType('adamw', 'm', m, d);
    expectDType('adamw', 'v', v, d);
    this.l.withTemps((t) => {
      const g = t.usable(grad, true, d);
      const a = this.args.adamw
        .ptr(1, this.l.base(param)).ptr(2, this.l.base(g)).ptr(3, this.l.base(m)).ptr(4, this.l.base(v))
        .f64(5, h.lr).f64(6, h.beta1).f64(7, h.beta2).f64(8, h.eps).f64(9, h.weightDecay).f64(10, h.bc1).f64(11, h.bc2);
      this.pointwise(FK.adamw(d), a, param.shape, [param, g, m, v]);
    });
  }

  /** Launches an element-wise kernel (argument 0 the Strided layout, the pointers already set) over shape. */
  private pointwise(k: KernelRef, args: KernelArgs, shape: readonly number[], ops: readonly Operand[]): void {
    for (const launch of stridedLaunches(shape, ops)) {
      args.bytes(0, launch.bytes);
      this.l.launch(k, [this.l.grid(launch.n, POINTWISE_BLOCK), 1, 1], [POINTWISE_BLOCK, 1, 1], 0, args);
    }
  }

  // ---- cross-entropy ----------------------------------------------------------------------------------

  crossEntropy(logits: View, targets: View, ignoreIndex: number, losses: View, lse: View): void {
    const d = fusedDType('crossEntropy', logits);
    expectDType('crossEntropy', 'losses', losses, accOf(d));
    expectDType('crossEntropy', 'lse', lse, accOf(d));
    const [n, vocab] = logits.shape;
    if (n === 0) return;
    this.l.withTemps((t) => {
      const [tg, idt] = indexView(targets, t);
      const ls = t.usable(losses, asContiguous(losses));
      const le = t.usable(lse, asContiguous(lse));
      const a = this.args.ce
        .ptr(0, this.l.addr(ls)).ptr(1, this.l.addr(le)).ptr(2, this.l.addr(logits)).ptr(3, this.l.addr(tg))
        .i64(4, n).i64(5, vocab).i64(6, logits.strides[0]).i64(7, logits.strides[1]).i64(8, tg.strides[0]).i64(9, ignoreIndex);
      this.l.launch(FK.crossEntropy(d, idt), [this.l.grid(n, 1), 1, 1], [rowThreads(vocab), 1, 1], 0, a);
      if (ls !== losses) this.l.host.copy(ls, losses);
      if (le !== lse) this.l.host.copy(le, lse);
    });
  }

  crossEntropyBackward(logits: View, targets: View, lse: View, gLoss: View, ignoreIndex: number, gLogits: View): void {
    const d = fusedDType('crossEntropyBackward', logits);
    expectDType('crossEntropyBackward', 'gLogits', gLogits, d);
    const [n, vocab] = logits.shape;
    if (n === 0) return;
    this.l.withTemps((t) => {
      const [tg, idt] = indexView(targets, t);
      const le = t.usable(lse, true, accOf(d));
      const g = t.usable(gLoss, true, accOf(d));
      const a = this.args.ceBwd
        .ptr(0, this.l.addr(gLogits)).ptr(1, this.l.addr(logits)).ptr(2, this.l.addr(tg)).ptr(3, this.l.addr(le)).ptr(4, this.l.addr(g))
        .i64(5, n).i64(6, vocab).i64(7, logits.strides[0]).i64(8, logits.strides[1]).i64(9, tg.strides[0])
        .i64(10, le.strides[0]).i64(11, g.strides[0]).i64(12, ignoreIndex);
      this.l.launch(FK.crossEntropyBwd(d, idt), [this.l.grid(n, 1), 1, 1], [rowThreads(vocab), 1, 1], 0, a);
    });
  }

  // ---- attention (fused-attention.ts) -----------------------------------------------------------------

  attention(q: View, k: View, v: View, o: AttentionOptions, out: View, lse: View): void {
    this.attn.forward(q, k, v, o, out, lse);
  }

  attentionBackward(q: View, k: View, v: View, out: View, lse: View, gOut: View, o: AttentionOptions, gq: View, gk: View, gv: View): void {
    this.attn.backward(q, k, v, out, lse, gOut, o, gq, gk, gv);
  }
}

const asContiguous = (v: View): boolean => isContiguous(v.shape, v.strides);

/** The targets as an int32/int64 view (other integer dtypes converted to int32, as the CPU reads them). */
function indexView(targets: View, t: Temps): [View, IndexDType] {
  const d = targets.storage.dtype;
  if (d === 'int32' || d === 'int64') return [targets, d];
  if (numel(targets.shape) > 0 && DTYPE_INFO[d].isFloat) throw new Error(`cuda crossEntropy: targets must be integers, got ${d}`);
  return [t.usable(targets, false, 'int32'), 'int32'];
}
