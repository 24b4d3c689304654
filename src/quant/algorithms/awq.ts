// AWQ lite (modelopt.md §1.2 `awq_lite`): per-input-channel scales that protect the weights of salient
// input channels before block-wise 4-bit weight quantization (INT4 groups, W4A8, NVFP4). For each such Linear:
//   act_j = mean |x_j| over the calibration tokens; w_j = mean over rows i of |W_ij| / amax(block of W_ij);
//   for α in {0, 0.1, ..., 1}: s = act^α / w^(1-α), clamped to [1e-4, 1e4], divided by sqrt(max(s) min(s));
//   loss(α) = Σ over the calibration data of ||x W^T - (x / s) Q(W s)^T||², with Q the weight fake-quantizer;
//   the best α gives pre_quant_scale 1/s on the input and W·s in the weight.
// Two passes over the calibration data (statistics, then the search), as Model Optimizer does. The loss here
// quantizes the weight only (input quantizers, if any, are calibrated afterwards on the smoothed input).
// The candidates Q(W s) are built on the model's device (fakeQuantWeightOnDevice: no host quantization and
// upload of 11 copies of every searched weight), bit for bit the host format code, which still builds the
// ones the device ops do not reproduce (weightFitsDevice) and every one under `hostCandidates`.

import { linear } from '../../nn/functional.js';
import { cast, div, keep, mul, sub, sum, tensor, tidy, type Tensor } from '../../tensor/index.js';
import { fakeQuantWeight, sharesTensorAmax, tensorAmax, type WeightScheme } from '../scheme.js';
import { smoothingUnits, type QuantizedModel } from '../ptq.js';
import { columnStats, dividedStats, fakeQuantWeightOnDevice, weightFitsDevice, type ColumnStats } from '../fake-quant-tensor.js';
import { DTYPE_INFO } from '../../tensor/dtype.js';

const ALPHAS = Array.from({ length: 11 }, (_, i) => i / 10);
const S_MIN = 1e-4;
const S_MAX = 1e4;

/** Columns per quantization block of a weight scheme (the blocks w_j is normalised by). */
function blockCols(s: WeightScheme, cols: number): number {
  switch (s.kind) {
    case 'int4':
    case 'w4a8':
      return s.groupSize;
    case 'nvfp4':
      return 16;
    case 'mxfp8':
    case 'mxfp4':
      return 32;
    case 'fp8-block':
      return s.blockSize;
    default:
      return cols;
  }
}

/** w_j: mean over rows of |W_ij| / amax of W_ij's block along the row. */
export function weightSalience(w: Float32Array, shape: readonly [number, number], block: number): Float32Array {
  const [rows, cols] = shape;
  const out = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    for (let b = 0; b < cols; b += block) {
      let m = 0;
      for (let j = b; j < b + block; j++) m = Math.max(m, Math.abs(w[i * cols + j]!));
      for (let j = b; j < b + block; j++) out[j] += m === 0 ? 0 : Math.abs(w[i * cols + j]!) / m;
    }
  }
  for (let j = 0; j < cols; j++) out[j] /= rows;
  return out;
}

/** s for one α, clamped and normalised as Model Optimizer does. */
export function awqScales(act: Float32Array, wsal: Float32Array, alpha: number): Float32Array {
  const s = new Float32Array(act.length);
  let lo = Infinity;
  let hi = 0;
  for (let j = 0; j < s.length; j++) {
    const v = Math.min(Math.max(act[j]! ** alpha / wsal[j]! ** (1 - alpha), S_MIN), S_MAX);
    s[j] = Number.isFinite(v) ? v : 1;
    lo = Math.min(lo, s[j]!);
    hi = Math.max(hi, s[j]!);
  }
  const norm = Math.sqrt(hi * lo);
  for (let j = 0; j < s.length; j++) s[j] /= norm;
  return s;
}

interface Candidate {
  alpha: number;
  /** the input factor 1/s (Model Optimizer's pre_quant_scale), shared by the unit's Linears */
  c: Float32Array;
  /** c as a tensor [in], and each Linear's fake-quantized W / c [out, in], in the model dtype */
  inv: Tensor;
  wq: Map<string, Tensor>;
  loss: number;
}

/** The Linears AWQ searches: enabled block-wise 4-bit weight quantizers (INT4 groups, W4A8, NVFP4). */
function awqTargets(q: QuantizedModel): Map<string, WeightScheme> {
  const targets = new Map<string, WeightScheme>();
  for (const p of q.quantizers) {
    if (p.role === 'weight' && p.scheme !== null && ['int4', 'w4a8', 'nvfp4'].includes(p.scheme.kind)) targets.set(p.module, p.scheme as WeightScheme);
  }
  return targets;
}

export interface AwqOptions {
  /**
   * Bytes of candidate weights held at once: every searched unit keeps one fake-quantized copy of its weights
   * per α, so the search runs over the calibration data once per chunk of units that fits (default: 2 GiB or
   * twice the searched weights, whichever is larger; a model that fits needs one pass).
   */
  candidateBytes?: number;
  /** build every candidate weight with the host format code (the reference the device path is tested against) */
  hostCandidates?: boolean;
}

/** The searched units split into chunks whose candidate weights (one copy per α) fit the budget. */
function unitChunks(q: QuantizedModel, targets: ReadonlyMap<string, WeightScheme>, o: AwqOptions): string[][][] {
  const units = smoothingUnits(q.model, new Set(targets.keys()), { exclude: q.noSmoothing });
  const bytesOf = (unit: readonly string[]): number =>
    ALPHAS.length * unit.reduce((n, lin) => n + q.model.params.get(`${lin}.weight`)!.size * DTYPE_INFO[q.model.dtype].bytes, 0);
  const total = units.reduce((n, u) => n + bytesOf(u) / ALPHAS.length, 0);
  const budget = o.candidateBytes ?? Math.max(2 ** 31, 2 * total);
  const chunks: string[][][] = [];
  let used = Infinity;
  for (const unit of units) {
    const b = bytesOf(unit);
    if (used + b > budget) {
      chunks.push([]);
      used = 0;
    }
    chunks[chunks.length - 1]!.push(unit);
    used += b;
  }
  return chunks;
}

/** Passes over the calibration data awqLite will make: the statistics, then one search pass per chunk. */
export function awqLitePasses(q: QuantizedModel, o: AwqOptions = {}): number {
  return 1 + unitChunks(q, awqTargets(q), o).length;
}

/**
 * Sets q.smooth for every Linear with a block-wise 4-bit weight quantizer (fused siblings q/k/v and gate/up
 * are searched together: one s, salience over all their rows, loss summed over them); returns the chosen α
 * by Linear. The losses, and so the result, do not depend on how the units are chunked.
 */
export function awqLite(q: QuantizedModel, batches: readonly (readonly number[])[], onBatch?: () => void, o: AwqOptions = {}): Map<string, number> {
  const targets = awqTargets(q);
  // pass 1: mean |x| per input channel
  const sums = new Map<string, { s: Float64Array; n: number }>();
  q.forEachInput(batches, (name, x) => {
    if (!targets.has(name)) return;
    const cols = x.shape[x.shape.length - 1]!;
    const v = x.toFloat32Array();
    const acc = sums.get(name) ?? { s: new Float64Array(cols), n: 0 };
    const colSums = acc.s;
    for (let r = 0; r < v.length; r += cols) for (let j = 0; j < cols; j++) colSums[j]! += Math.abs(v[r + j]!); // row by row: the same order as one flat pass
    acc.n += v.length / cols;
    sums.set(name, acc);
  }, undefined, onBatch);

  const best = new Map<string, Candidate>();
  for (const chunk of unitChunks(q, targets, o)) {
    const unitOf = new Map<string, Candidate[]>();
    const all = chunk.map((unit) => {
      const cands = candidates(q, unit, sums.get(unit[0]!)!, targets, o.hostCandidates === true);
      for (const lin of unit) unitOf.set(lin, cands);
      return cands;
    });
    try {
      // pass 2 (per chunk): output error of every candidate against the unquantized Linears
      q.forEachInput(batches, (name, x) => {
        const cs = unitOf.get(name);
        if (cs === undefined) return;
        const ref = linear(x, q.model.params.get(`${name}.weight`)!);
        for (const c of cs) {
          const d = sub(linear(mul(x, c.inv), c.wq.get(name)!), ref);
          c.loss += sum(mul(d, d)).toFloat64Array()[0]!;
        }
      }, undefined, onBatch);
      for (const cs of all) {
        let b = cs[0]!;
        for (const c of cs) if (c.loss < b.loss) b = c;
        for (const lin of b.wq.keys()) best.set(lin, b);
      }
    } finally {
      for (const cs of all) {
        for (const c of cs) {
          c.inv.dispose();
          for (const t of c.wq.values()) t.dispose();
        }
      }
    }
  }
  // the factors are set only now: the search passes see the model exactly as the first one did
  const chosen = new Map<string, number>();
  for (const [lin, c] of best) {
    q.smooth.set(lin, c.c);
    chosen.set(lin, c.alpha);
  }
  return chosen;
}

interface UnitWeight {
  lin: string;
  w: Tensor;
  shape: [number, number];
  /** W on the host (float32), for the salience and the host-built candidates */
  v: Float32Array;
  scheme: WeightScheme;
  /** per-column max / smallest nonzero |W|: the stats of every W / c follow from them without a pass over W */
  cols: ColumnStats;
}

/** The α candidates of one unit: its input factor and each Linear's fake-quantized W / c. */
function candidates(q: QuantizedModel, unit: readonly string[], acc: { s: Float64Array; n: number }, targets: ReadonlyMap<string, WeightScheme>, hostOnly: boolean): Candidate[] {
  const act = Float32Array.from(acc.s, (x) => x / acc.n);
  const cols = act.length;
  const ws = unit.map((lin): UnitWeight => {
    const w = q.model.params.get(`${lin}.weight`)!;
    const shape = w.shape as [number, number];
    const v = w.toFloat32Array();
    return { lin, w, shape, v, scheme: targets.get(lin)!, cols: columnStats(v, shape) };
  });
  // salience: mean over every row of the unit
  const wsal = new Float32Array(cols);
  let rows = 0;
  for (const m of ws) {
    const part = weightSalience(m.v, m.shape, blockCols(m.scheme, cols));
    for (let j = 0; j < cols; j++) wsal[j] += part[j]! * m.shape[0];
    rows += m.shape[0];
  }
  for (let j = 0; j < cols; j++) wsal[j] /= rows;
  const { backend, dtype } = ws[0]!.w;
  return ALPHAS.map((alpha): Candidate => {
    // the input factor c = 1/s in float32, and W / c exactly as QuantizedModel.apply() will divide it
    const c = Float32Array.from(awqScales(act, wsal, alpha), (x) => 1 / x);
    return tidy(() => {
      const c32 = tensor(c, [cols], { device: backend });
      return { alpha, c, inv: keep(cast(c32, dtype)), wq: candidateWeights(ws, c, c32, hostOnly), loss: 0 };
    });
  });
}

/**
 * Each Linear's fake-quantized W / c (kept, in the model dtype) for one c: on the device where its ops
 * reproduce the host code, else (and for all under `hostOnly`) with the host code as before.
 */
function candidateWeights(ws: readonly UnitWeight[], c: Float32Array, c32: Tensor, hostOnly: boolean): Map<string, Tensor> {
  const fused = ws.length > 1;
  const stats = ws.map((m) => dividedStats(m.cols, c));
  // fused siblings share their per-tensor amax on export (and in apply()); stats[k].amax is exactly the host's
  const amaxes = ws.map((m, k) => (sharesTensorAmax(m.scheme) ? stats[k]!.amax : null));
  const shared = fused && amaxes.every((a) => a !== null) ? Math.max(...(amaxes as number[])) : undefined;
  let host: { scaled: Float32Array[]; shared: number | undefined } | undefined;
  const hostPath = (): NonNullable<typeof host> => {
    if (host !== undefined) return host;
    const scaled = ws.map((m) => Float32Array.from(m.v, (v, i) => Math.fround(v / c[i % c.length]!)));
    const hostAmaxes = ws.map((m, k) => tensorAmax(m.scheme, scaled[k]!, m.shape));
    host = { scaled, shared: fused && hostAmaxes.every((a) => a !== null) ? Math.max(...(hostAmaxes as number[])) : undefined };
    return host;
  };
  // one scope per Linear: its float32 temporaries are freed before the next Linear's are made
  return new Map(ws.map((m, k) => [m.lin, keep(tidy(() => {
    if (!hostOnly && weightFitsDevice(m.scheme, m.shape, stats[k]!, shared)) {
      return cast(fakeQuantWeightOnDevice(m.scheme, div(cast(m.w, 'float32'), c32), stats[k]!.amax, shared), m.w.dtype);
    }
    const h = hostPath();
    return tensor(fakeQuantWeight(m.scheme, h.scaled[k]!, m.shape, h.shared), m.shape, { device: m.w.backend }).cast(m.w.dtype);
  }))]));
}
