// Layer functions shared by every model: Linear, RMSNorm, SwiGLU MLP pieces, cross-entropy.
// Numerics follow Hugging Face's PyTorch modules (e.g. RMSNorm computes in float32).

import { Tensor, tensor, add, matmul, mul, mean, transpose, cast, logSoftmax, gather, reshape, sum, unary, div } from '../tensor/index.js';
import { shapeStr } from '../tensor/shape.js';

/** y = x @ W^T + b with W [out, in] (torch.nn.Linear layout). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new RangeError(`linear: input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)}`);
  }
  const y = matmul(x, transpose(weight, 0, 1));
  return bias ? add(y, bias) : y;
}

/** weight * (x / sqrt(mean(x^2) + eps)), normalisation in float32 then cast back (LlamaRMSNorm). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const x32 = cast(x, 'float32');
  const variance = mean(mul(x32, x32), -1, true);
  const normed = cast(mul(x32, add(variance, eps).rsqrt()), x.dtype);
  return mul(weight.dtype === normed.dtype ? weight : cast(weight, normed.dtype), normed);
}

/**
 * Mean token cross-entropy of logits [..., V] against integer targets [...]; positions whose target
 * equals ignoreIndex do not count. Computed in float32.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const v = logits.shape[logits.ndim - 1];
  const flat = reshape(cast(logits, 'float32'), [-1, v]);
  const ids = targets.toArray();
  if (ids.length !== flat.shape[0]) throw new RangeError(`crossEntropy: ${ids.length} targets for ${flat.shape[0]} rows of logits`);
  const count = ids.filter((i) => i !== ignoreIndex).length;
  if (count === 0) throw new RangeError('crossEntropy: every target is ignored');
  const device = logits.backend;
  const idx = tensor(ids.map((i) => (i === ignoreIndex ? 0 : i)), [ids.length, 1], { dtype: 'int32', device });
  const weight = tensor(ids.map((i) => (i === ignoreIndex ? 0 : 1)), [ids.length, 1], { dtype: 'float32', device });
  const logp = gather(logSoftmax(flat, -1), 1, idx);
  return div(unary('neg', sum(mul(logp, weight))), count);
}
