// Attention on CUDA (kernels/attention.cu, attention_tc.cu, attention_bwd.cu): picks the kernel path,
// builds the launch layout (attention.cuh AttnLayout) and sizes grids and shared memory.
//
// Paths: the flash kernels for float32/float16/bfloat16 with head dim <= 128 (padded to 32, 64 or 128);
// among those, the split-K decode kernels when few query rows share a KV head (rep * S <= 16: decoding
// against a KV cache), and otherwise, for float16/bfloat16 with head dim exactly 64 or 128 on sm_80+, the
// tensor-core forward (attention_tc.cu; USE_TC_FORWARD); the generic warp-per-row kernels otherwise
// (float64, head dim > 128). The backward uses the tensor-core kernels (attention_tc_bwd.cu) for the same
// dtypes, head dims and devices as the tensor-core forward, attention_bwd.cu otherwise. q, k, v, out and gOut may have
// any strides on their first three dims (a KV cache slice, a transposed projection); a view whose last
// dim is not unit-stride is copied to a contiguous temporary.

import type { AttentionOptions, View } from '../backend.js';
import { isContiguous, numel, shapeStr } from '../../tensor/shape.js';
import { KernelArgs } from './driver.js';
import { FK, isFlashDType, isFusedDType, isTcDim, isTcDType, type FlashDim, type FlashDType, type FusedDType, type TcDim, type TcDType } from './fused-kernels.js';
import type { FusedLauncher, Temps } from './fused-host.js';

/** attention.cuh AttnLayout: every field an int64, in this order (test/backend/cuda-fused-sources.test.ts checks it). */
export const ATTN_FIELDS = [
  'B', 'H', 'KV', 'S', 'T', 'D',
  'q_sb', 'q_sh', 'q_ss', 'k_sb', 'k_sh', 'k_st', 'v_sb', 'v_sh', 'v_st', 'o_sb', 'o_sh', 'o_ss', 'g_sb', 'g_sh', 'g_ss',
  'past', 'window', 'causal', 'key_lo', 'key_hi', 'split_len', 'past_at',
] as const;
type AttnField = (typeof ATTN_FIELDS)[number];
type AttnValues = Partial<Record<AttnField, number>>;

function layoutBytes(values: AttnValues): Uint8Array {
  const bytes = new Uint8Array(ATTN_FIELDS.length * 8);
  const view = new DataView(bytes.buffer);
  ATTN_FIELDS.forEach((f, i) => view.setBigInt64(8 * i, BigInt(values[f] ?? 0), true));
  return bytes;
}

// Launch geometry, mirrored from the kernels: 128 threads; FwdTile / BwdTile tile sizes; the decode
// kernel's 8 query rows per CTA and 4 warps.
const THREADS = 128;
const BQ = 64;
const KQ = 32; // query rows per step of attn_bwd_dkv
const DECODE_ROWS = 8;
const DECODE_MAX_ROWS = 16; // rep * S up to this takes the decode kernels
const MIN_SPLIT_KEYS = 128;
const F32 = 4;
const P = 8;
const LAYOUT: readonly [number, number] = [ATTN_FIELDS.length * 8, 8];

/** Switch for the tensor-core prefill forward (attention_tc.cu); false falls back to attn_fwd. */
const USE_TC_FORWARD = true;
/** attention_tc.cu TcTile: 64 query rows per CTA; two stages of K and V key tiles [64][D + 8] of 16-bit words */
const TC_KEYS = 64;
const tcShared = (dim: number): number => 2 * 2 * TC_KEYS * (dim + 8) * 2;
/** attention_tc_bwd.cu TcBwdTile: keys per step of the dQ kernel, queries per step and keys per CTA of dK/dV */
const tcBwdTile = (dim: TcDim): { dqKeys: number; kvQueries: number; kvKeys: number } =>
  dim === 128 ? { dqKeys: 32, kvQueries: 32, kvKeys: 64 } : { dqKeys: 64, kvQueries: 64, kvKeys: 64 };
const tcBwdShared = {
  // two stages of {K, V} [dqKeys][dim + 8] 16-bit words
  dq: (dim: TcDim): number => 2 * 2 * tcBwdTile(dim).dqKeys * (dim + 8) * 2,
  // K, V [kvKeys][dim + 8]; two stages of {Q, dO} [kvQueries][dim + 8]; two stages of float {lse, delta} [kvQueries]
  dkv: (dim: TcDim): number => {
    const t = tcBwdTile(dim);
    return (2 * t.kvKeys + 4 * t.kvQueries) * (dim + 8) * 2 + 4 * t.kvQueries * F32;
  },
};

const padDim = (d: number): FlashDim => (d <= 32 ? 32 : d <= 64 ? 64 : 128);
const keyTile = (dp: FlashDim): number => (dp === 128 ? 32 : 64);
/** dynamic shared memory in bytes of each flash kernel (the pointer carving at the top of each body) */
const shared = {
  fwd: (dp: FlashDim): number => (BQ * (dp + 4) + 2 * keyTile(dp) * (dp + 4) + BQ * (keyTile(dp) + 4)) * F32,
  decode: (dp: FlashDim): number => (DECODE_ROWS * (dp + 4) + (THREADS / 32) * (32 * (dp + 4) + DECODE_ROWS * 32)) * F32,
  dq: (dp: FlashDim): number => (2 * BQ * (dp + 4) + 2 * keyTile(dp) * (dp + 4) + BQ * (keyTile(dp) + 4) + 2 * BQ) * F32,
  dkv: (dp: FlashDim): number => (2 * keyTile(dp) * (dp + 4) + 2 * KQ * (dp + 4) + 2 * keyTile(dp) * (KQ + 4) + 2 * KQ) * F32,
};

/** [B, H, S, D] with k, v [B, KV, T, D] */
interface Dims {
  B: number;
  H: number;
  KV: number;
  S: number;
  T: number;
  D: number;
}

export class CudaAttention {
  // one argument block per launch site, rewritten per call
  private readonly args = {
    fwd: new KernelArgs([LAYOUT, P, P, P, P, P, P]), // L, scale, out, lse, q, k, v
    decode: new KernelArgs([LAYOUT, P, P, P, P, P]), // L, scale, part, q, k, v
    combine: new KernelArgs([LAYOUT, P, P, P, P]), // L, out, lse, part, splits
    delta: new KernelArgs([LAYOUT, P, P, P]), // L, delta, out, gOut
    dq: new KernelArgs([LAYOUT, P, P, P, P, P, P, P, P]), // L, scale, gq, q, k, v, gOut, lse, delta
    dkv: new KernelArgs([LAYOUT, P, P, P, P, P, P, P, P, P]), // L, scale, gk, gv, q, k, v, gOut, lse, delta
  };

  constructor(private readonly l: FusedLauncher) {}

  forward(q: View, k: View, v: View, o: AttentionOptions, out: View, lse: View): void {
    const d = this.dtype('attention', q, out, lse);
    const g = dims(q, k);
    if (g.B * g.H * g.S === 0) return;
    const decodes = isFlashDType(d) && g.D <= 128 && (g.H / g.KV) * g.S <= DECODE_MAX_ROWS && g.B * g.KV <= 65535;
    if (o.pastAt) {
      if (!decodes) throw new RangeError(`cuda attention: a device-side past needs the decode kernels (at most ${DECODE_MAX_ROWS} query rows per KV head, head dim <= 128, float32/16-bit), got q ${shapeStr(q.shape)} ${d}`);
      if (o.pastAt.storage.dtype !== 'int32' || numel(o.pastAt.shape) !== 1) throw new TypeError('cuda attention: pastAt must be one int32 value');
    }
    this.l.withTemps((t) => {
      const [qv, kv, vv] = [q, k, v].map((x) => unitRows(t, x, d));
      const ov = t.usable(out, isContiguous(out.shape, out.strides));
      const lv = t.usable(lse, isContiguous(lse.shape, lse.strides));
      const base = layoutValues(g, o, qv, kv, vv);
      if (o.pastAt) base.past_at = this.l.addr(o.pastAt);
      const rows = g.B * g.H * g.S;
      const tc = this.tcPath(d, g.D);
      if (isFlashDType(d) && g.D <= 128) {
        const dp = padDim(g.D);
        if (decodes) {
          this.decode(d, dp, g, o, base, t, ov, lv, [qv, kv, vv]);
        } else if (USE_TC_FORWARD && tc !== null) {
          const a = this.args.fwd.bytes(0, layoutBytes(base)).f64(1, o.scale).ptr(2, this.l.addr(ov)).ptr(3, this.l.addr(lv));
          this.setInputs(a, 4, [qv, kv, vv]);
          this.l.launch(FK.attnFwdTc(tc.d, tc.dim), [Math.ceil(g.S / BQ), g.H, g.B], [THREADS, 1, 1], tcShared(tc.dim), a);
        } else {
          const a = this.args.fwd.bytes(0, layoutBytes(base)).f64(1, o.scale).ptr(2, this.l.addr(ov)).ptr(3, this.l.addr(lv));
          this.setInputs(a, 4, [qv, kv, vv]);
          this.l.launch(FK.attnFwd(d, dp), [Math.ceil(g.S / BQ), g.H, g.B], [THREADS, 1, 1], shared.fwd(dp), a);
        }
      } else {
        const warps = this.genericWarps(2, d, g.D);
        const a = this.args.fwd.bytes(0, layoutBytes(base)).f64(1, o.scale).ptr(2, this.l.addr(ov)).ptr(3, this.l.addr(lv));
        this.setInputs(a, 4, [qv, kv, vv]);
        this.l.launch(FK.attnFwdGeneric(d), [this.l.grid(rows, warps, 32), 1, 1], [32 * warps, 1, 1], warps * 2 * g.D * accBytes(d), a);
      }
      if (ov !== out) this.l.host.copy(ov, out);
      if (lv !== lse) this.l.host.copy(lv, lse);
    });
  }

  /** Split-K decode: partial softmax states per key split, merged by attn_combine. */
  private decode(d: FlashDType, dp: FlashDim, g: Dims, o: AttentionOptions, base: AttnValues, t: Temps, out: View, lse: View, qkv: View[]): void {
    const groups = Math.ceil(((g.H / g.KV) * g.S) / DECODE_ROWS);
    // the keys some query row can see: positions past .. past + S - 1 (with a device-side past, the kernel
    // narrows the whole cache down to them)
    const keyLo = o.pastAt ? 0 : Math.min(g.T, o.window === null ? 0 : Math.max(0, o.past - o.window + 1));
    const keyHi = o.pastAt ? g.T : o.causal ? Math.max(keyLo, Math.min(g.T, o.past + g.S)) : g.T;
    const keys = keyHi - keyLo;
    // enough CTAs to fill the GPU twice, but at least MIN_SPLIT_KEYS keys per split
    const ctas = g.B * g.KV * groups;
    const want = Math.max(1, Math.min(Math.ceil((2 * this.l.smCount) / ctas), Math.ceil(keys / MIN_SPLIT_KEYS)));
    const splitLen = Math.max(32, Math.ceil(keys / want / 32) * 32);
    const splits = Math.max(1, Math.ceil(keys / splitLen));
    const part = t.scratch(g.B * g.H * g.S * splits * (g.D + 2) * F32);
    const layout = layoutBytes({ ...base, key_lo: keyLo, key_hi: keyHi, split_len: splitLen });
    const a = this.args.decode.bytes(0, layout).f64(1, o.scale).ptr(2, part);
    this.setInputs(a, 3, qkv);
    this.l.launch(FK.attnDecode(d, dp), [splits, g.B * g.KV, groups], [THREADS, 1, 1], shared.decode(dp), a, true);
    const c = this.args.combine.bytes(0, layout).ptr(1, this.l.addr(out)).ptr(2, this.l.addr(lse)).ptr(3, part).i64(4, splits);
    this.l.launch(FK.attnCombine(d), [this.l.grid(g.B * g.H * g.S * g.D, THREADS), 1, 1], [THREADS, 1, 1], 0, c, true);
  }

  backward(q: View, k: View, v: View, out: View, lse: View, gOut: View, o: AttentionOptions, gq: View, gk: View, gv: View): void {
    const d = this.dtype('attentionBackward', q, gq, lse);
    if (o.pastAt) throw new Error('cuda attentionBackward: a device-side past (pastAt) is for inference only');
    const g = dims(q, k);
    for (const [name, x] of [['gk', gk], ['gv', gv]] as const) {
      if (x.storage.dtype !== d) throw new Error(`cuda attentionBackward: ${name} must be ${d}, got ${x.storage.dtype}`);
    }
    if (g.B * g.H * g.S === 0) {
      // no queries: every key's gradient is an empty sum
      this.l.host.fill(gk, 0);
      this.l.host.fill(gv, 0);
      return;
    }
    this.l.withTemps((t) => {
      const [qv, kv, vv, ov, go] = [q, k, v, out, gOut].map((x) => unitRows(t, x, d));
      const lv = t.usable(lse, isContiguous(lse.shape, lse.strides), 'float32');
      const [gqv, gkv, gvv] = [gq, gk, gv].map((x) => t.usable(x, isContiguous(x.shape, x.strides)));
      const base = layoutValues(g, o, qv, kv, vv);
      base.o_sb = ov.strides[0];
      base.o_sh = ov.strides[1];
      base.o_ss = ov.strides[2];
      base.g_sb = go.strides[0];
      base.g_sh = go.strides[1];
      base.g_ss = go.strides[2];
      const layout = layoutBytes(base);
      const rows = g.B * g.H * g.S;
      const delta = t.scratch(rows * accBytes(d));
      const da = this.args.delta.bytes(0, layout).ptr(1, delta).ptr(2, this.l.addr(ov)).ptr(3, this.l.addr(go));
      this.l.launch(FK.attnBwdDelta(d), [this.l.grid(rows, THREADS / 32, 32), 1, 1], [THREADS, 1, 1], 0, da);

      const q1 = this.args.dq.bytes(0, layout).f64(1, o.scale).ptr(2, this.l.addr(gqv));
      this.setInputs(q1, 3, [qv, kv, vv, go]);
      q1.ptr(7, this.l.addr(lv)).ptr(8, delta);
      const k1 = this.args.dkv.bytes(0, layout).f64(1, o.scale).ptr(2, this.l.addr(gkv)).ptr(3, this.l.addr(gvv));
      this.setInputs(k1, 4, [qv, kv, vv, go]);
      k1.ptr(8, this.l.addr(lv)).ptr(9, delta);
      const tc = this.tcPath(d, g.D);
      if (tc !== null) {
        this.l.launch(FK.attnBwdDqTc(tc.d, tc.dim), [Math.ceil(g.S / BQ), g.H, g.B], [THREADS, 1, 1], tcBwdShared.dq(tc.dim), q1);
        const keys = tcBwdTile(tc.dim).kvKeys;
        if (g.T > 0) this.l.launch(FK.attnBwdDkvTc(tc.d, tc.dim), [Math.ceil(g.T / keys), g.KV, g.B], [THREADS, 1, 1], tcBwdShared.dkv(tc.dim), k1);
      } else if (isFlashDType(d) && g.D <= 128) {
        const dp = padDim(g.D);
        this.l.launch(FK.attnBwdDq(d, dp), [Math.ceil(g.S / BQ), g.H, g.B], [THREADS, 1, 1], shared.dq(dp), q1);
        if (g.T > 0) this.l.launch(FK.attnBwdDkv(d, dp), [Math.ceil(g.T / keyTile(dp)), g.KV, g.B], [THREADS, 1, 1], shared.dkv(dp), k1);
      } else {
        const qw = this.genericWarps(3, d, g.D);
        this.l.launch(FK.attnBwdDqGeneric(d), [this.l.grid(rows, qw, 32), 1, 1], [32 * qw, 1, 1], qw * 3 * g.D * accBytes(d), q1);
        const kw = this.genericWarps(4, d, g.D);
        const keyRows = g.B * g.KV * g.T;
        if (keyRows > 0) this.l.launch(FK.attnBwdDkvGeneric(d), [this.l.grid(keyRows, kw, 32), 1, 1], [32 * kw, 1, 1], kw * 4 * g.D * accBytes(d), k1);
      }
      for (const [tmp, dst] of [[gqv, gq], [gkv, gk], [gvv, gv]] as const) if (tmp !== dst) this.l.host.copy(tmp, dst);
    });
  }

  /** The tensor-core kernels' (attention_tc*.cu) dtype and head dim, when they take these on this device. */
  private tcPath(d: FusedDType, dim: number): { d: TcDType; dim: TcDim } | null {
    return isTcDType(d) && isTcDim(dim) && this.l.host.driver.info.computeCapability[0] >= 8 ? { d, dim } : null;
  }

  /** Validates dtypes: q's is the routine's (a fused dtype), `out` must match it, lse must be float32. */
  private dtype(op: string, q: View, out: View, lse: View): FusedDType {
    const d = q.storage.dtype;
    if (!isFusedDType(d)) throw new Error(`cuda ${op}: ${d} tensors are not supported (float32, float16, bfloat16 or float64)`);
    if (out.storage.dtype !== d) throw new Error(`cuda ${op}: the output must be ${d}, got ${out.storage.dtype}`);
    if (lse.storage.dtype !== 'float32') throw new Error(`cuda ${op}: lse must be float32, got ${lse.storage.dtype}`);
    return d;
  }

  /** Sets consecutive pointer arguments from `first` on. */
  private setInputs(a: KernelArgs, first: number, views: readonly View[]): void {
    views.forEach((x, i) => a.ptr(first + i, this.l.addr(x)));
  }

  /** Warps per block of a generic kernel keeping `rowsPerWarp` rows of D values in shared memory. */
  private genericWarps(rowsPerWarp: number, d: FusedDType, D: number): number {
    const perWarp = rowsPerWarp * Math.max(1, D) * accBytes(d);
    const max = this.l.host.driver.info.maxSharedPerBlockOptin;
    if (perWarp > max) throw new RangeError(`cuda attention: head dim ${D} needs ${perWarp} B of shared memory per warp, the device allows ${max} B`);
    return Math.max(1, Math.min(THREADS / 32, Math.floor(max / perWarp)));
  }
}

const accBytes = (d: FusedDType): number => (d === 'float64' ? 8 : 4);

function dims(q: View, k: View): Dims {
  if (q.shape.length !== 4 || k.shape.length !== 4) throw new RangeError(`cuda attention: q ${shapeStr(q.shape)} and k ${shapeStr(k.shape)} must be 4-d`);
  const [B, H, S, D] = q.shape;
  const [, KV, T] = k.shape;
  if (KV === 0 || H % KV !== 0) throw new RangeError(`cuda attention: ${H} query heads do not group over ${KV} KV heads`);
  return { B, H, KV, S, T, D };
}

/** x, or a contiguous copy when its last dim is not unit-stride or its dtype is not `d`. */
function unitRows(t: Temps, x: View, d: FusedDType): View {
  return t.usable(x, x.shape[3] <= 1 || x.strides[3] === 1 || numel(x.shape) === 0, d);
}

function layoutValues(g: Dims, o: AttentionOptions, q: View, k: View, v: View): AttnValues {
  return {
    ...g,
    q_sb: q.strides[0], q_sh: q.strides[1], q_ss: q.strides[2],
    k_sb: k.strides[0], k_sh: k.strides[1], k_st: k.strides[2],
    v_sb: v.strides[0], v_sh: v.strides[1], v_st: v.strides[2],
    past: o.past, window: o.window ?? -1, causal: o.causal ? 1 : 0,
  };
}
