// The host side of kernels/decode_step.cu: a whole batch-1 greedy decode step as one persistent kernel
// (backend.ts FusedDecode). prepare() checks that the model and GPU fit the kernel (sm_90 or later for its
// bulk copies, 16-bit float weights, every operand contiguous and 16-byte aligned, head dim <= 128, at most 15
// query heads per KV head, a weight ring of at least two stages in shared memory), uploads the per-layer
// address table, sizes the scratch buffers, the attention split and the weight ring, and builds the argument
// block once; each launch() is then one cooperative launch with nothing rebuilt.

import type { DecodeStepKernel, DecodeStepSpec, View } from '../backend.js';
import { contiguousStrides, numel } from '../../tensor/shape.js';
import type { DeviceBlock } from './allocator.js';
import { KernelArgs, type Handle } from './driver.js';
import { FK } from './fused-kernels.js';
import { rowThreads, type FusedLauncher } from './fused-host.js';

/** decode_step.cu DsLayer, every field an int64, in this order */
export const LAYER_FIELDS = ['in_norm', 'wq', 'wk', 'wv', 'wo', 'post_norm', 'wg', 'wu', 'wd', 'kc', 'vc'] as const;
/** decode_step.cu DsArgs, every field an int64, in this order */
export const STEP_FIELDS = [
  'layers', 'nlayers', 'D', 'H', 'KV', 'HD', 'I', 'V', 'cap',
  'embed', 'final_norm', 'lm_head', 'eps', 'norm_threads',
  'cos', 'sin', 'pos', 'ids', 'produced', 'next', 'logits',
  'h', 'qkv', 'attn', 'act', 'part', 'ctl', 'tagged',
  'splits', 'chunk_max', 'scale',
  'stage', 'slots', 'vec_off', 'attn_off', 'timing',
] as const;
/** decode_step.cu DS_BLOCK (the CTA) and DS_WARPS (its consumer warps; the last warp is the producer) */
const THREADS = 512;
const WARPS = 15;
/** the weight ring's smallest stage (bytes): a stage is one bulk copy, and small copies cost issue time */
const STAGE_MIN = 16 * 1024;
/** decode_step.cu: ctl words before the per-KV-head attention counters */
const CTL_ATTN = 8;
/** decode_step.cu DS_TRACE_STAGES: ring stages whose issue / land / free times CTA 0 records with timing */
const TRACE_STAGES = 4096;
/** decode_step.cuh DS_MARKS: points inside each layer's phases that CTA 0 records with timing */
const MARKS = 8;
/** shared memory the attention phase may take for its score rows (bytes): what is left is the weight ring */
const ATTN_SHARED_MAX = 16 * 1024;

type Field = (typeof STEP_FIELDS)[number];
/** Launch geometry and shared-memory layout of one prepared step (bytes for the offsets and sizes). */
interface StepPlan {
  grid: number;
  splits: number;
  chunkMax: number;
  shared: number;
  stage: number;
  slots: number;
  vecOff: number;
  attnOff: number;
}
/** dynamic shared memory each decode-step kernel function has been allowed (by function) */
const sharedAllowed = new Map<Handle, number>();

export class CudaDecodeSteps {
  constructor(private readonly l: FusedLauncher) {}

  /** The step for `spec`, or null when the model is outside what the kernel handles. */
  prepare(spec: DecodeStepSpec): DecodeStepKernel | null {
    const s = spec;
    const d = s.embed.storage.dtype;
    if (d !== 'bfloat16' && d !== 'float16') return null;
    const { hidden: D, heads: H, kvHeads: KV, headDim: HD, intermediate: I, vocab: V, capacity: cap } = s;
    const QD = H * HD;
    const G = H / KV;
    if (!Number.isInteger(G) || G > WARPS || HD % 2 !== 0 || HD > 128 || D % 8 !== 0 || I % 8 !== 0 || QD % 8 !== 0 || s.layers.length === 0) return null;
    if (Math.max(V, D, I, QD) >= 2 ** 31) return null; // the kernel's row slices are 32-bit (decode_step.cu DsSlice)
    if (2 * (3 + 5 * s.layers.length) >= 65535) return null; // DS_LL's 16-bit phase tags stay distinct across two launches
    const ok = (v: View | null, dtype: string, shape: readonly number[]): boolean =>
      v !== null &&
      v.storage.dtype === dtype &&
      v.shape.length === shape.length &&
      v.shape.every((n, i) => n === shape[i]) &&
      contiguous(v) &&
      this.l.addr(v) % 16 === 0;
    const weights: [View, number[]][] = [[s.embed, [V, D]], [s.finalNorm, [D]], [s.lmHead, [V, D]], [s.cos, [cap, HD / 2]], [s.sin, [cap, HD / 2]]];
    for (const L of s.layers) {
      weights.push([L.inputNorm, [D]], [L.q, [QD, D]], [L.k, [KV * HD, D]], [L.v, [KV * HD, D]], [L.o, [D, QD]], [L.postNorm, [D]]);
      weights.push([L.gate, [I, D]], [L.up, [I, D]], [L.down, [D, I]], [L.kCache, [1, KV, cap, HD]], [L.vCache, [1, KV, cap, HD]]);
    }
    if (!weights.every(([v, shape]) => ok(v, d, shape))) return null;
    if (!ok(s.pos, 'int32', [1]) || !ok(s.ids, 'int32', [1, 1]) || !ok(s.next, 'int32', [1])) return null;
    if (s.produced !== null && !ok(s.produced, 'int32', [cap])) return null;
    if (s.logits !== null && !ok(s.logits, 'float32', [V])) return null;

    const host = this.l.host;
    if (host.driver.info.computeCapability[0] < 9) return null; // cp.async.bulk and mbarrier tx counts: sm_90
    const kernel = FK.decodeStep(d);
    const fn = host.kernels.fn(kernel);
    const regs = host.driver.functionResources(fn).registers;
    if (regs * THREADS > 65536) return null; // one CTA per SM must fit (the kernel's launch bounds ask for it)
    const grid = this.l.smCount;
    // attention work items: (KV head, split); a split's keys are scored in shared memory, G rows of chunk_max
    let splits = Math.max(1, Math.floor(grid / KV));
    const maxChunk = Math.floor(ATTN_SHARED_MAX / (4 * G)) - HD;
    if (maxChunk < 1) return null;
    splits = Math.max(splits, Math.ceil(cap / maxChunk));
    const chunkMax = Math.ceil(cap / splits);
    // dynamic shared memory: the weight ring, the activation vector, the attention's scratch
    const round = (n: number, to: number): number => Math.ceil(n / to) * to;
    const stage = round(Math.max(STAGE_MIN, 2 * 2 * D, 2 * QD, 2 * I), 32); // a row of each matrix; gate|up rows in pairs
    const vecBytes = round(2 * Math.max(D, I, QD), 16);
    const attnBytes = round(4 * (G * (HD + chunkMax) + 2 * HD), 16); // q and the split path's scores, or the register path's q, new value and key
    const room = host.driver.info.maxSharedPerBlockOptin - host.driver.functionResources(fn).staticSharedBytes - vecBytes - attnBytes;
    const slots = Math.min(WARPS, Math.floor(room / stage)); // one consumer warp owns each slot
    if (slots < 2) return null;
    const ring = { stage, slots, vecOff: slots * stage, attnOff: slots * stage + vecBytes };
    const shared = ring.attnOff + attnBytes;

    const blocks: DeviceBlock[] = [];
    try {
      return this.build(s, fn, kernel.name, { grid, splits, chunkMax, shared, ...ring }, blocks);
    } catch (e) {
      for (const b of blocks.splice(0)) host.allocator.free(b);
      throw e;
    }
  }

  /** Uploads the layer table, allocates the scratch (into `blocks`) and builds the argument block. */
  private build(s: DecodeStepSpec, fn: Handle, name: string, plan: StepPlan, blocks: DeviceBlock[]): DecodeStepKernel {
    const host = this.l.host;
    const { grid, splits, chunkMax, shared } = plan;
    const { hidden: D, heads: H, kvHeads: KV, headDim: HD, intermediate: I, vocab: V, capacity: cap } = s;
    const QD = H * HD;
    const block = (bytes: number): number => {
      const b = host.allocator.alloc(Math.max(16, Math.ceil(bytes / 16) * 16));
      blocks.push(b);
      return b.ptr;
    };
    const a = (v: View): number => this.l.addr(v);
    const table = new BigInt64Array(s.layers.length * LAYER_FIELDS.length);
    s.layers.forEach((L, i) => {
      const row = [L.inputNorm, L.q, L.k, L.v, L.o, L.postNorm, L.gate, L.up, L.down, L.kCache, L.vCache].map((v) => BigInt(a(v)));
      table.set(row, i * LAYER_FIELDS.length);
    });
    const layers = block(table.byteLength);
    host.driver.htod(layers, table);
    const ctlBytes = 4 * (CTL_ATTN + KV);
    const ctl = block(ctlBytes);
    host.driver.memsetD8(ctl, 0, ctlBytes);
    // the kernel macro DS_LL's tagged vectors (u32 words: h twice, q|k|v, the attention output, the SwiGLU
    // output); tag 0 is never written, so zeroed words read as not yet written
    const taggedBytes = 4 * (2 * D + 2 * QD + 2 * KV * HD + I);
    const tagged = block(taggedBytes);
    host.driver.memsetD8(tagged, 0, taggedBytes);
    const eps = new DataView(new ArrayBuffer(8));
    eps.setFloat64(0, s.eps, true);
    const scale = new DataView(new ArrayBuffer(4));
    scale.setFloat32(0, 1 / Math.sqrt(HD), true);
    const stamps = 3 + 5 * s.layers.length;
    const clocks = stamps + 3 * TRACE_STAGES + stamps * grid;
    const timingWords = clocks + 2 + MARKS * s.layers.length;
    const timing = s.timing === true ? block(8 * timingWords) : 0;
    if (timing !== 0) host.driver.memsetD8(timing, 0, 8 * timingWords);
    const values: Record<Field, bigint> = {
      layers: BigInt(layers), nlayers: BigInt(s.layers.length), D: BigInt(D), H: BigInt(H), KV: BigInt(KV), HD: BigInt(HD), I: BigInt(I), V: BigInt(V), cap: BigInt(cap),
      embed: BigInt(a(s.embed)), final_norm: BigInt(a(s.finalNorm)), lm_head: BigInt(a(s.lmHead)), eps: eps.getBigInt64(0, true), norm_threads: BigInt(rowThreads(D)),
      cos: BigInt(a(s.cos)), sin: BigInt(a(s.sin)), pos: BigInt(a(s.pos)), ids: BigInt(a(s.ids)),
      produced: s.produced === null ? 0n : BigInt(a(s.produced)), next: BigInt(a(s.next)), logits: s.logits === null ? 0n : BigInt(a(s.logits)),
      h: BigInt(block(2 * D)), qkv: BigInt(block(2 * (QD + 2 * KV * HD))), attn: BigInt(block(2 * QD)), act: BigInt(block(2 * I)),
      part: BigInt(block(4 * H * splits * (HD + 2))), ctl: BigInt(ctl), tagged: BigInt(tagged),
      splits: BigInt(splits), chunk_max: BigInt(chunkMax), scale: BigInt(scale.getInt32(0, true)),
      stage: BigInt(plan.stage), slots: BigInt(plan.slots), vec_off: BigInt(plan.vecOff), attn_off: BigInt(plan.attnOff), timing: BigInt(timing),
    };
    const bytes = new Uint8Array(8 * STEP_FIELDS.length);
    const view = new DataView(bytes.buffer);
    STEP_FIELDS.forEach((f, i) => view.setBigInt64(8 * i, values[f], true));
    const args = new KernelArgs([[bytes.length, 8]]).bytes(0, bytes);
    // the attribute belongs to the kernel, which every prepared step shares: only ever raised
    if (shared > (sharedAllowed.get(fn) ?? 48 * 1024)) {
      host.driver.setMaxDynamicShared(fn, shared);
      sharedAllowed.set(fn, shared);
    }
    let live = true;
    return {
      launch: () => {
        if (!live) throw new Error('decode step: launch() after dispose()');
        host.driver.launchCooperative(fn, [grid, 1, 1], [THREADS, 1, 1], shared, args, name);
      },
      phaseNs: () => {
        if (timing === 0) return null;
        const t = new BigUint64Array(stamps);
        host.driver.synchronize();
        host.driver.dtoh(t, timing);
        return Array.from(t.subarray(1), (v) => Number(v - t[0]));
      },
      traceNs: () => {
        if (timing === 0) return null;
        const t = new BigUint64Array(timingWords);
        host.driver.synchronize();
        host.driver.dtoh(t, timing);
        const stages: [number, number, number][] = [];
        for (let g = 0; g < TRACE_STAGES; g++) {
          const e = t.subarray(stamps + 3 * g, stamps + 3 * g + 3);
          if (e[2] === 0n) break; // stages past the step's last were never freed
          stages.push([Number(e[0] - t[0]), Number(e[1] - t[0]), Number(e[2] - t[0])]);
        }
        const at = stamps + 3 * TRACE_STAGES;
        const ctaDone = Array.from({ length: stamps - 1 }, (_, k) => Array.from(t.subarray(at + (k + 1) * grid, at + (k + 2) * grid), (v) => Number(v - t[0])));
        const [c0, c1] = [t[clocks], t[clocks + 1]];
        // a point this launch did not pass keeps an earlier launch's time (or 0): the reader checks it lies in its phase
        const marks = Array.from({ length: s.layers.length }, (_, l) =>
          Array.from(t.subarray(clocks + 2 + MARKS * l, clocks + 2 + MARKS * (l + 1)), (v) => (v === 0n ? null : Number(v - t[0]))),
        );
        return { stages, ctaDone, marks, smMHz: (Number(c1 - c0) * 1e3) / Number(t[stamps - 1] - t[0]) };
      },
      dispose: () => {
        if (!live) return;
        live = false;
        for (const b of blocks.splice(0)) host.allocator.free(b);
      },
    };
  }
}

function contiguous(v: View): boolean {
  const want = contiguousStrides(v.shape);
  return numel(v.shape) <= 1 || v.strides.every((s, i) => v.shape[i] === 1 || s === want[i]);
}
