// Layer functions shared by every model: Linear, RMSNorm, SwiGLU, cross-entropy. Numerics follow
// Hugging Face's PyTorch modules (e.g. RMSNorm normalises in float32); the heavy ones are fused routines.

import { Tensor, add, matmul, transpose, reshape } from '../tensor/index.js';
import { shapeStr } from '../tensor/shape.js';
import { rmsNorm as rmsNormFused, crossEntropyLoss, swiglu } from '../tensor/ops/fused.js';
import { empty } from '../tensor/ops/core.js';
import { needsGrad } from '../tensor/autograd.js';
import { hasGroupedLinear } from '../backend/backend.js';

/** y = x @ W^T + b with W [out, in] (torch.nn.Linear layout). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new RangeError(`linear: input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)}`);
  }
  const y = matmul(x, transpose(weight, 0, 1));
  return bias ? add(y, bias) : y;
}

/** The RMSNorm a grouped launch applies to its input first (the *Norm* functions below). */
interface InputNorm {
  weight: Tensor;
  eps: number;
}

/**
 * Runs Linears of x (no biases) as one grouped launch where the backend takes it (few rows, inference):
 * outputs [..., N_i], or null when the caller should use the plain ops. Equal results either way.
 */
function grouped(x: Tensor, ws: readonly Tensor[], epilogue: 'none' | 'residual' | 'swiglu', residual?: Tensor, norm?: InputNorm): Tensor[] | null {
  const b = x.backend;
  if (!hasGroupedLinear(b) || needsGrad([x, ...ws, ...(residual ? [residual] : []), ...(norm ? [norm.weight] : [])])) return null;
  for (const w of ws) if (w.ndim !== 2 || w.shape[1] !== x.shape[x.ndim - 1] || w.backend !== b) return null;
  if (norm !== undefined && (norm.weight.backend !== b || norm.weight.dtype !== x.dtype)) return null;
  const lead = x.shape.slice(0, -1);
  const outs = (epilogue === 'swiglu' ? ws.slice(0, 1) : ws).map((w) => empty([...lead, w.shape[0]], x.dtype, b));
  const segments = ws.map((w, i) => ({ w, out: outs[Math.min(i, outs.length - 1)], residual }));
  if (b.linearGroup(x, segments, epilogue, norm)) return outs;
  for (const o of outs) o.dispose();
  return null;
}

/** x @ W_i^T for weights that share their input (attention's q/k/v projections): one launch where possible. */
export function linears(x: Tensor, weights: readonly Tensor[]): Tensor[] {
  return grouped(x, weights, 'none') ?? weights.map((w) => linear(x, w));
}

/** linears(rmsNorm(x, normWeight, eps), weights), with the norm folded into the launch where possible. */
export function normLinears(x: Tensor, normWeight: Tensor, eps: number, weights: readonly Tensor[]): Tensor[] {
  return grouped(x, weights, 'none', undefined, { weight: normWeight, eps }) ?? linears(rmsNorm(x, normWeight, eps), weights);
}

/** residual + x @ W^T (a residual branch's output projection), fused where possible. */
export function linearResidual(x: Tensor, weight: Tensor, residual: Tensor): Tensor {
  return grouped(x, [weight], 'residual', residual)?.[0] ?? add(residual, linear(x, weight));
}

/** silu(x @ gate^T) * (x @ up^T) (the MLP's first half), fused where possible. */
export function linearSwiglu(x: Tensor, gate: Tensor, up: Tensor): Tensor {
  return grouped(x, [gate, up], 'swiglu')?.[0] ?? swiglu(linear(x, gate), linear(x, up));
}

/** linearSwiglu(rmsNorm(x, normWeight, eps), gate, up), with the norm folded into the launch where possible. */
export function normLinearSwiglu(x: Tensor, normWeight: Tensor, eps: number, gate: Tensor, up: Tensor): Tensor {
  return grouped(x, [gate, up], 'swiglu', undefined, { weight: normWeight, eps })?.[0] ?? linearSwiglu(rmsNorm(x, normWeight, eps), gate, up);
}

/** weight * (x / sqrt(mean(x^2) + eps)) over the last dim (LlamaRMSNorm). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return rmsNormFused(x, weight, eps);
}

/**
 * Mean token cross-entropy of logits [..., V] against integer targets [...]; positions whose target
 * equals ignoreIndex do not count. Computed in float32.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const v = logits.shape[logits.ndim - 1];
  return crossEntropyLoss(reshape(logits, [-1, v]), reshape(targets, [-1]), ignoreIndex);
}
