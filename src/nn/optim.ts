// AdamW with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW semantics), global-norm
// gradient clipping, and the warmup + cosine learning-rate schedule.

import { Tensor, noGrad, keep, tidy, zeros, mul, sum } from '../tensor/index.js';
import type { Backend, FusedKernels } from '../backend/backend.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /**
   * Mixed precision: keep a float32 master copy of every lower-precision (bf16/f16) parameter, with float32
   * moments; each update runs on the master and writes it back rounded to the parameter's dtype.
   */
  masterWeights?: boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  step = 0;
  private readonly m = new Map<Tensor, Tensor>();
  private readonly v = new Map<Tensor, Tensor>();
  private readonly master = new Map<Tensor, Tensor>();
  readonly masterWeights: boolean;

  constructor(readonly params: Tensor[], o: AdamWOptions) {
    this.lr = o.lr;
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0.01;
    this.masterWeights = o.masterWeights ?? false;
  }

  /** The tensor the update runs on: a float32 master copy for bf16/f16 parameters when masterWeights is set. */
  private target(p: Tensor): Tensor {
    if (!this.masterWeights || p.dtype === 'float32' || p.dtype === 'float64') return p;
    let w = this.master.get(p);
    if (w === undefined) {
      w = keep(noGrad(() => p.cast('float32').contiguous()));
      this.master.set(p, w);
    }
    return w;
  }

  /** float32 master copy of a parameter (the parameter itself when it has none). */
  masterOf(p: Tensor): Tensor {
    return this.master.get(p) ?? p;
  }

  /** One update from each parameter's .grad (fused kernel, in place); parameters without a gradient are left alone. */
  update(): void {
    this.step++;
    const hyper = {
      lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay,
      bc1: 1 - this.beta1 ** this.step, bc2: 1 - this.beta2 ** this.step,
    };
    noGrad(() => {
      for (const p of this.params) {
        const g = p.grad;
        if (g === null) continue;
        if (!p.isContiguous) throw new Error('AdamW: parameters must be contiguous tensors');
        const w = this.target(p);
        let m = this.m.get(p);
        let v = this.v.get(p);
        if (m === undefined || v === undefined) {
          m = keep(zeros([...w.shape], { dtype: w.dtype, device: w.backend }));
          v = keep(zeros([...w.shape], { dtype: w.dtype, device: w.backend }));
          this.m.set(p, m);
          this.v.set(p, v);
        }
        const grad = tidy(() => (g.isContiguous && g.dtype === w.dtype ? g : keep(g.cast(w.dtype).contiguous())));
        (p.backend as Backend & FusedKernels).adamw(w, grad, m, v, hyper);
        if (grad !== g) grad.dispose();
        // the model computes with the rounded copy of the updated master
        if (w !== p) p.backend.copy(w, p);
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees the moments and master copies (the parameters stay); a later update() starts them afresh. */
  dispose(): void {
    for (const map of [this.m, this.v, this.master]) {
      for (const t of map.values()) t.dispose();
      map.clear();
    }
  }

  /** Optimizer state for checkpoints: moments (and float32 master weights) by parameter index. */
  state(): { step: number; m: (Tensor | null)[]; v: (Tensor | null)[]; master: (Tensor | null)[] } {
    return {
      step: this.step,
      m: this.params.map((p) => this.m.get(p) ?? null),
      v: this.params.map((p) => this.v.get(p) ?? null),
      master: this.params.map((p) => this.master.get(p) ?? null),
    };
  }

  /** Restores a checkpointed state(): tensors by parameter index (kept; the optimizer owns them from now on). */
  restore(s: { step: number; m: (Tensor | null)[]; v: (Tensor | null)[]; master: (Tensor | null)[] }): void {
    this.step = s.step;
    this.params.forEach((p, i) => {
      const [m, v, w] = [s.m[i], s.v[i], s.master[i]];
      if (m && v) {
        this.m.set(p, keep(m));
        this.v.set(p, keep(v));
      }
      if (w) this.master.set(p, keep(w));
    });
  }
}

/** Scales all gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return noGrad(() => {
    let sq = 0;
    for (const p of params) if (p.grad) sq += tidy(() => sum(mul(p.grad!, p.grad!)).cast('float64').item());
    const norm = Math.sqrt(sq);
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) {
      for (const p of params) {
        if (p.grad === null) continue;
        const scaled = keep(tidy(() => mul(p.grad!, coef)));
        p.grad.dispose();
        p.grad = scaled;
      }
    }
    return norm;
  });
}

/**
 * Learning rate at `step` (0-based, the value used for that step's update): linear warmup from 0, then
 * cosine decay to minLr at totalSteps — transformers' get_cosine_with_min_lr_schedule_with_warmup.
 */
export function warmupCosineLr(step: number, o: { peak: number; warmupSteps: number; totalSteps: number; minLr?: number }): number {
  if (step < o.warmupSteps) return (o.peak * step) / Math.max(1, o.warmupSteps);
  const minRate = (o.minLr ?? 0) / o.peak;
  const progress = (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps);
  const factor = 0.5 * (1 + Math.cos(Math.PI * progress));
  return o.peak * Math.max(0, factor * (1 - minRate) + minRate);
}
