// GPTQ (modelopt.md §1.2 `gptq`): layer by layer, each Linear's weight is quantized one input column at a
// time, and each column's rounding error is pushed onto the columns not yet quantized through the inverse
// Hessian H = 2/n Σ x xᵀ of the Linear's inputs, so the layer output error stays small. As in Model Optimizer:
// the Hessian inputs come from the already-quantized earlier layers (stages run in forward order), damping is
// 1% of mean diag(H), columns go in blocks of 128, and the block scales are static: computed from the
// original weight by the format's max rule, then kept while the columns change.
// Float64 math; CPU-side (rows x cols^2 per Linear: fine for small models, slow for billions of parameters).

import { matmul, transpose, type Tensor } from '../../tensor/index.js';
import { UserError } from '../../util/errors.js';
import { staticQuantizer, staticScales, type ElementQuantizer } from './block-quantizer.js';
import { layerPrefix } from '../../models/decoder.js';
import type { WeightScheme } from '../scheme.js';
import type { QuantizedModel } from '../ptq.js';

/** Lower Cholesky factor of a symmetric positive definite n x n matrix (row-major). */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(s > 0)) throw new UserError('gptq: the Hessian is not positive definite even after damping; give more calibration data');
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j]!;
      }
    }
  }
  return l;
}

/** Inverse of an SPD matrix from its lower Cholesky factor L: (L Lᵀ)^-1 = L^-T L^-1. */
function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  // Li = L^-1 (lower triangular), by forward substitution
  const li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    li[c * n + c] = 1 / l[c * n + c]!;
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s += l[i * n + k]! * li[k * n + c]!;
      li[i * n + c] = -s / l[i * n + i]!;
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i]! * li[k * n + j]!;
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return inv;
}

/**
 * GPTQ of one weight w [rows, cols] with Hessian h [cols, cols] (not modified). Returns the dequantized
 * weight. `blockSize` columns are updated lazily together; `percDamp` of mean diag(H) is added to the diagonal.
 */
export function gptqWeight(w: Float32Array, shape: readonly [number, number], h: Float64Array, quant: ElementQuantizer, blockSize = 128, percDamp = 0.01): Float32Array {
  const [rows, cols] = shape;
  const H = Float64Array.from(h);
  const W = Float64Array.from(w);
  let meanDiag = 0;
  for (let i = 0; i < cols; i++) {
    if (H[i * cols + i] === 0) {
      // a dead input channel: nothing to preserve, its weights do not matter
      H[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0;
    }
    meanDiag += H[i * cols + i]!;
  }
  const damp = (percDamp * meanDiag) / cols;
  for (let i = 0; i < cols; i++) H[i * cols + i]! += damp;
  // U: upper Cholesky factor of H^-1 (Hinv = Uᵀ U)
  const lInv = cholesky(inverseFromCholesky(cholesky(H, cols), cols), cols);
  const U = (i: number, j: number): number => lInv[j * cols + i]!;
  const Q = new Float32Array(w.length);
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    const err = new Float64Array(rows * (i2 - i1));
    for (let i = i1; i < i2; i++) {
      const d = U(i, i);
      for (let r = 0; r < rows; r++) {
        const v = W[r * cols + i]!;
        const q = quant(v, r, i);
        Q[r * cols + i] = q;
        const e = (v - q) / d;
        err[r * (i2 - i1) + (i - i1)] = e;
        for (let j = i + 1; j < i2; j++) W[r * cols + j]! -= e * U(i, j);
      }
    }
    for (let r = 0; r < rows; r++) {
      for (let j = i2; j < cols; j++) {
        let s = 0;
        for (let k = i1; k < i2; k++) s += err[r * (i2 - i1) + (k - i1)]! * U(k, j);
        W[r * cols + j]! -= s;
      }
    }
  }
  return Q;
}

/** Linears of one decoder layer in the order their inputs become available (siblings share one pass). */
function stages(q: QuantizedModel): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < q.model.config.numLayers; i++) {
    const p = layerPrefix(i);
    out.push([`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`], [`${p}.self_attn.o_proj`], [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`], [`${p}.mlp.down_proj`]);
  }
  out.push(['lm_head']);
  return out;
}

/** The Linears GPTQ quantizes (enabled weight quantizers) and its stages, those without targets left out. */
function plan(q: QuantizedModel): { schemes: Map<string, WeightScheme>; pending: string[][] } {
  const schemes = new Map<string, WeightScheme>();
  for (const p of q.quantizers) if (p.role === 'weight' && p.scheme !== null) schemes.set(p.module, p.scheme as WeightScheme);
  return { schemes, pending: stages(q).map((s) => s.filter((l) => schemes.has(l))).filter((s) => s.length > 0) };
}

/** Passes over the calibration data gptq() makes: one per stage. */
export function gptqPasses(q: QuantizedModel): number {
  return plan(q).pending.length;
}

/**
 * Runs GPTQ on every Linear with an enabled int4 / nvfp4 weight quantizer, stage by stage; each stage's
 * Hessians come from a pass over the calibration data through the weights quantized so far. The results
 * are handed to q.setPrequantized, so apply() keeps them. Returns the number of Linears quantized.
 */
export function gptq(q: QuantizedModel, batches: readonly (readonly number[])[], onStage?: (done: number, total: number) => void): number {
  const { schemes, pending } = plan(q);
  const shared = q.sharedWeightAmax(); // before any weight changes: one NVFP4 global scale per q/k/v and gate/up group
  let done = 0;
  for (const stage of pending) {
    const hs = new Map<string, { h: Float64Array; n: number }>();
    q.forEachInput(batches, (name, x: Tensor) => {
      if (!stage.includes(name)) return;
      const cols = x.shape[x.shape.length - 1]!;
      const x2 = x.reshape([-1, cols]).cast('float32');
      const xtx = matmul(transpose(x2, 0, 1), x2).toFloat64Array();
      const acc = hs.get(name) ?? { h: new Float64Array(cols * cols), n: 0 };
      for (let i = 0; i < xtx.length; i++) acc.h[i]! += xtx[i]!;
      acc.n += x2.shape[0]!;
      hs.set(name, acc);
    });
    for (const lin of stage) {
      const w = q.model.params.get(`${lin}.weight`)!;
      const shape = w.shape as [number, number];
      const orig = w.toFloat32Array();
      const acc = hs.get(lin)!;
      const h = acc.h.map((v) => (2 * v) / acc.n);
      const scheme = schemes.get(lin)!;
      const g = shared.get(lin);
      q.setPrequantized(lin, orig, gptqWeight(orig, shape, h, staticQuantizer(scheme, orig, shape, undefined, g)), staticScales(scheme, orig, shape, undefined, g));
      done++;
    }
    onStage?.(done, schemes.size);
  }
  return done;
}
