// Activation calibrators: each sees every calibration batch of one quantizer's input and then names the
// amax its static scale is built from (modelopt.md §1.2). Host-side Float32Array code: the model hooks
// hand them the activations.
// - max: running max |x| (Model Optimizer's MaxCalibrator, the `max` algorithm);
// - percentile / entropy / mse: Model Optimizer's HistogramCalibrator (2048 bins of |x|, start_bin 128,
//   percentile default 99.99). The histogram starts at [0, max|x| of the first batch] and grows by whole
//   bins of the same width when a later batch is larger (pytorch-quantization's collect()).
// NaN or ±inf in an activation is an error naming the quantizer: one bad value would poison every scale.

import { UserError } from '../../util/errors.js';

export const CALIBRATORS = ['max', 'percentile', 'entropy', 'mse'] as const;
export type CalibratorName = (typeof CALIBRATORS)[number];

export interface Calibrator {
  collect(x: Float32Array): void;
  /** the calibrated amax; null when no (non-empty) batch was collected */
  amax(): number | null;
}

/** What the entropy and mse searches quantize histogram centres with (the quantizer's own rounding). */
export type CenterQuantizer = (centers: Float32Array, amax: number) => Float32Array;

export interface HistogramOptions {
  bins?: number;
  startBin?: number;
  percentile?: number;
  /** levels on one side of zero for the entropy search: 127 for 8-bit signed formats */
  quantLevels?: number;
  /** for mse: fake quantization of the bin centres at a candidate amax */
  quantize?: CenterQuantizer;
}

function absMaxChecked(name: string, x: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!Number.isFinite(v)) {
      throw new UserError(`calibration: ${name} saw ${v} at element ${i} of its input; the model produces non-finite activations on the calibration data (check the weights and the --dtype)`);
    }
    const a = Math.abs(v);
    if (a > m) m = a;
  }
  return m;
}

export class MaxCalibrator implements Calibrator {
  private value: number | null = null;
  constructor(private readonly name: string) {}
  collect(x: Float32Array): void {
    if (x.length === 0) return;
    const m = absMaxChecked(this.name, x);
    this.value = this.value === null ? m : Math.max(this.value, m);
  }
  /** folds in an amax computed elsewhere (on the device) */
  collectAmax(m: number): void {
    if (!Number.isFinite(m)) throw new UserError(`calibration: ${this.name} saw a non-finite activation (amax ${m}); the model produces NaN/inf on the calibration data`);
    this.value = this.value === null ? m : Math.max(this.value, m);
  }
  amax(): number | null {
    return this.value;
  }
}

export class HistogramCalibrator implements Calibrator {
  private counts: Float64Array | null = null;
  private width = 0;
  private readonly bins: number;
  private readonly startBin: number;

  constructor(
    private readonly name: string,
    private readonly method: 'percentile' | 'entropy' | 'mse',
    private readonly o: HistogramOptions = {},
  ) {
    this.bins = o.bins ?? 2048;
    this.startBin = o.startBin ?? 128;
    if (method === 'mse' && o.quantize === undefined) throw new Error('HistogramCalibrator mse needs a centre quantizer');
  }

  collect(x: Float32Array): void {
    if (x.length === 0) return;
    const m = absMaxChecked(this.name, x);
    if (this.counts === null) {
      // an all-zero first batch still needs a positive range
      this.width = (m > 0 ? m : 1) / this.bins;
      this.counts = new Float64Array(this.bins);
    }
    const need = Math.ceil(m / this.width);
    if (need > this.counts.length) {
      const grown = new Float64Array(need);
      grown.set(this.counts);
      this.counts = grown;
    }
    const c = this.counts;
    const last = c.length - 1;
    for (let i = 0; i < x.length; i++) {
      const b = Math.floor(Math.abs(x[i]!) / this.width);
      c[b > last ? last : b]! += 1;
    }
  }

  amax(): number | null {
    const c = this.counts;
    if (c === null) return null;
    switch (this.method) {
      case 'percentile':
        return this.percentile(c, this.o.percentile ?? 99.99);
      case 'entropy':
        return this.entropy(c);
      case 'mse':
        return this.mse(c);
    }
  }

  private percentile(c: Float64Array, p: number): number {
    if (!(p > 0 && p <= 100)) throw new UserError(`calibration: percentile ${p} must be in (0, 100]`);
    const total = c.reduce((a, b) => a + b, 0);
    let acc = 0;
    for (let i = 0; i < c.length; i++) {
      acc += c[i]!;
      if (acc / total >= p / 100) return (i + 1) * this.width;
    }
    return c.length * this.width;
  }

  /**
   * TensorRT's KL-divergence threshold search: for each candidate cut i >= startBin, the reference P is the
   * first i bins with everything beyond folded into bin i-1; Q merges those i bins into `quantLevels`
   * groups and spreads each group's mass evenly over its non-empty bins. The cut with the least KL(P||Q)
   * wins; amax is its upper edge.
   */
  private entropy(c: Float64Array): number {
    const levels = this.o.quantLevels ?? 127;
    const n = c.length;
    if (n <= levels) return n * this.width;
    let best = Infinity;
    let bestI = n;
    let tail = 0;
    for (let i = n - 1; i >= Math.max(this.startBin, levels); i--) tail += c[i]!;
    for (let i = Math.max(this.startBin, levels); i <= n; i++) {
      // tail = mass of bins i .. n-1
      const p = Float64Array.from(c.subarray(0, i));
      p[i - 1]! += tail;
      const q = new Float64Array(i);
      const per = i / levels;
      for (let g = 0; g < levels; g++) {
        const lo = Math.floor(g * per);
        const hi = g === levels - 1 ? i : Math.floor((g + 1) * per);
        let mass = 0;
        let nonzero = 0;
        for (let j = lo; j < hi; j++) {
          mass += c[j]!;
          if (c[j]! !== 0) nonzero++;
        }
        if (nonzero === 0) continue;
        for (let j = lo; j < hi; j++) if (c[j]! !== 0) q[j] = mass / nonzero;
      }
      const kl = klDivergence(p, q);
      if (kl < best) {
        best = kl;
        bestI = i;
      }
      if (i < n) tail -= c[i]!;
    }
    return bestI * this.width;
  }

  /** Expected squared error of quantizing the bin centres at each candidate amax (a centre >= startBin). */
  private mse(c: Float64Array): number {
    const n = c.length;
    const centers = new Float32Array(n);
    for (let i = 0; i < n; i++) centers[i] = (i + 0.5) * this.width;
    let best = Infinity;
    let bestAmax = n * this.width;
    for (let i = Math.min(this.startBin, n - 1); i < n; i++) {
      const amax = centers[i]!;
      const q = this.o.quantize!(centers, amax);
      let err = 0;
      for (let j = 0; j < n; j++) err += c[j]! * (q[j]! - centers[j]!) ** 2;
      if (err < best) {
        best = err;
        bestAmax = amax;
      }
    }
    return bestAmax;
  }
}

/** KL(P || Q) of two histograms, each normalised; bins where P is 0 add nothing, Q = 0 under P > 0 is +inf. */
function klDivergence(p: Float64Array, q: Float64Array): number {
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i]!;
    sq += q[i]!;
  }
  if (sp === 0 || sq === 0) return Infinity;
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i]! / sp;
    if (a === 0) continue;
    const b = q[i]! / sq;
    if (b === 0) return Infinity;
    kl += a * Math.log(a / b);
  }
  return kl;
}
