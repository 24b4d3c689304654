// AWQ clip (modelopt.md §1.2 `awq_clip`; `awq_full` = awq_lite, then this): per quantization block, the
// amax is clipped to r x max|block| for r in {0.5, 0.55, ..., 1.0}, keeping the r whose quantized block gives
// the least output error on calibration tokens (64 sampled per batch). A block's output error is
// dᵀ G d, with d = w_block - QDQ(w_block) and G = Σ_t x_t,g x_t,gᵀ over the sampled inputs restricted to the
// block's columns g. For NVFP4 only the per-tensor (global) amax is clipped, by the same search on the whole
// weight; fused siblings (q/k/v, gate/up), which share one global scale on export (weight_scale_2), are
// searched together: one ratio of the group's amax, the error summed over the group. Weights smoothed by
// awq_lite are clipped as smoothed (their inputs scaled by the same factors).

import { smoothingUnits, type QuantizedModel } from '../ptq.js';
import type { WeightScheme } from '../scheme.js';
import type { Tensor } from '../../tensor/index.js';
import { absMax } from '../formats/common.js';
import { scaleBlock, searchBlockAmax, staticQuantizer, staticScales, type StaticWeight } from './block-quantizer.js';

export const CLIP_RATIOS: readonly number[] = Array.from({ length: 11 }, (_, i) => Math.round((0.5 + 0.05 * i) * 100) / 100);
const TOKENS_PER_BATCH = 64;

/** Gram matrices of the sampled inputs per column block: g[b] is bs x bs, row-major. */
function blockGrams(x: Float32Array, cols: number, bs: number): Float64Array[] {
  const n = x.length / cols;
  const grams = Array.from({ length: cols / bs }, () => new Float64Array(bs * bs));
  for (let t = 0; t < n; t++) {
    for (let g = 0; g < cols / bs; g++) {
      const G = grams[g]!;
      const off = t * cols + g * bs;
      for (let i = 0; i < bs; i++) {
        const xi = x[off + i]!;
        if (xi === 0) continue;
        for (let j = 0; j < bs; j++) G[i * bs + j]! += xi * x[off + j]!;
      }
    }
  }
  return grams;
}

const quadratic = (G: Float64Array, d: Float64Array): number => {
  const n = d.length;
  let s = 0;
  for (let i = 0; i < n; i++) {
    if (d[i] === 0) continue;
    let r = 0;
    for (let j = 0; j < n; j++) r += G[i * n + j]! * d[j]!;
    s += d[i]! * r;
  }
  return s;
};

/** The clipped quantization of one weight w [rows, cols] given the sampled (smoothed) inputs x [n, cols]. */
export function clipWeight(s: WeightScheme, w: Float32Array, shape: readonly [number, number], x: Float32Array): StaticWeight {
  if (s.kind === 'nvfp4') return clipNvfp4Group(s, [{ w, shape, x }])[0]!;
  const cols = shape[1];
  const bs = scaleBlock(s);
  const grams = blockGrams(x, cols, bs);
  return searchBlockAmax(s, w, shape, CLIP_RATIOS, (b, d) => quadratic(grams[b % (cols / bs)]!, d));
}

/**
 * NVFP4: the global amax of Linears that share their input (and their weight_scale_2 on export) clipped
 * together, to r x the group's max |w|; block scales follow from it. Returns each member's quantization at
 * the ratio with the least summed output error.
 */
export function clipNvfp4Group(s: WeightScheme, members: readonly { w: Float32Array; shape: readonly [number, number]; x: Float32Array }[]): StaticWeight[] {
  const cols = members[0]!.shape[1];
  const bs = scaleBlock(s);
  const grams = members.map((m) => blockGrams(m.x, cols, bs));
  const top = Math.max(...members.map((m) => absMax(m.w, 0, m.w.length)));
  let best = Infinity;
  let out: StaticWeight[] = [];
  const d = new Float64Array(bs);
  for (const r of CLIP_RATIOS) {
    let err = 0;
    const cand = members.map(({ w, shape }, m) => {
      const quant = staticQuantizer(s, w, shape, undefined, top * r);
      const q = new Float32Array(w.length);
      for (let b = 0; b < w.length / bs; b++) {
        for (let k = 0; k < bs; k++) {
          const i = b * bs + k;
          q[i] = quant(w[i]!, Math.floor(i / cols), i % cols);
          d[k] = w[i]! - q[i]!;
        }
        err += quadratic(grams[m]![b % (cols / bs)]!, d);
      }
      return { values: q, scales: staticScales(s, w, shape, undefined, top * r) };
    });
    if (err < best) {
      best = err;
      out = cand;
    }
  }
  return out;
}

/** Runs the clip search on every enabled INT4 / NVFP4 weight quantizer; returns how many weights it set. */
export function awqClip(q: QuantizedModel, batches: readonly (readonly number[])[], onBatch?: () => void): number {
  const targets = new Map<string, WeightScheme>();
  for (const p of q.quantizers) {
    if (p.role === 'weight' && p.scheme !== null && (p.scheme.kind === 'int4' || p.scheme.kind === 'nvfp4')) targets.set(p.module, p.scheme as WeightScheme);
  }
  // evenly spaced tokens of every batch, smoothed as the quantized Linear will see them
  const samples = new Map<string, number[]>();
  q.forEachInput(batches, (name, x: Tensor) => {
    if (!targets.has(name)) return;
    const cols = x.shape[x.shape.length - 1]!;
    const v = q.smoothed(name, x).toFloat32Array();
    const n = v.length / cols;
    const step = Math.max(1, Math.floor(n / TOKENS_PER_BATCH));
    const acc = samples.get(name) ?? [];
    for (let t = 0; t < n && t / step < TOKENS_PER_BATCH; t += step) for (let j = 0; j < cols; j++) acc.push(v[t * cols + j]!);
    samples.set(name, acc);
  }, undefined, onBatch);
  const smoothedWeight = (lin: string): { w: Float32Array; shape: [number, number] } => {
    const t = q.model.params.get(`${lin}.weight`)!;
    const shape = t.shape as [number, number];
    const c = q.smooth.get(lin);
    const orig = t.toFloat32Array();
    return { w: c === undefined ? orig : Float32Array.from(orig, (v, i) => Math.fround(v / c[i % shape[1]]!)), shape };
  };
  for (const unit of smoothingUnits(q.model, new Set(targets.keys()))) {
    const members = unit.map((lin) => ({ ...smoothedWeight(lin), x: Float32Array.from(samples.get(lin)!), scheme: targets.get(lin)! }));
    const joint = members.every((m) => m.scheme.kind === 'nvfp4');
    const results = joint ? clipNvfp4Group(members[0]!.scheme, members) : members.map((m) => clipWeight(m.scheme, m.w, m.shape, m.x));
    unit.forEach((lin, k) => q.setPrequantized(lin, members[k]!.w, results[k]!.values, results[k]!.scales));
  }
  return targets.size;
}
