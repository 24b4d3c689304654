// Layer functions shared by every model: Linear, RMSNorm, SwiGLU, cross-entropy. Numerics follow
// Hugging Face's PyTorch modules (e.g. RMSNorm normalises in float32); the heavy ones are fused routines.

import { Tensor, add, matmul, transpose, reshape } from '../tensor/index.js';
import { shapeStr } from '../tensor/shape.js';
import { rmsNorm as rmsNormFused, crossEntropyLoss } from '../tensor/ops/fused.js';

/** y = x @ W^T + b with W [out, in] (torch.nn.Linear layout). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new RangeError(`linear: input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)}`);
  }
  const y = matmul(x, transpose(weight, 0, 1));
  return bias ? add(y, bias) : y;
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
