// Fused routines as differentiable ops: one kernel forward, one kernel backward, with the side outputs
// (rstd, lse) saved on the tape. Numerics are defined by the CPU reference in src/backend/cpu/fused.ts.

import type { AttentionOptions, Backend, FusedKernels } from '../../backend/backend.js';
import type { Tensor } from '../tensor.js';
import { shapeStr } from '../shape.js';
import { empty, record, assertSameBackend } from './core.js';
import { contiguous, transpose } from './shape-ops.js';
import { cast, compare, div } from './elementwise.js';
import { sum } from './reduce.js';

function kernels(t: Tensor): Backend & FusedKernels {
  return t.backend as Backend & FusedKernels;
}

/** weight * x / sqrt(mean(x^2) + eps) over the last dim (LlamaRMSNorm numerics). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  assertSameBackend('rmsNorm', x, weight);
  const d = x.shape[x.ndim - 1];
  if (weight.ndim !== 1 || weight.shape[0] !== d) throw new RangeError(`rmsNorm: weight ${shapeStr(weight.shape)} does not match input ${shapeStr(x.shape)}`);
  const w = weight.dtype === x.dtype ? weight : cast(weight, x.dtype);
  const out = empty(x.shape, x.dtype, x.backend);
  const rstd = empty(x.shape.slice(0, -1), 'float32', x.backend);
  kernels(x).rmsNorm(x, w, eps, out, rstd);
  return record(out, 'rmsNorm', [x, w], (g) => {
    const gx = empty(x.shape, x.dtype, x.backend);
    const gw = empty([d], w.dtype, x.backend);
    kernels(x).rmsNormBackward(x, w, rstd, g, gx, gw);
    return [gx, gw];
  });
}

/** Rotate-half RoPE of x [..., S, D] with tables cos/sin [S, D/2]. */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const out = empty(x.shape, x.dtype, x.backend);
  kernels(x).rope(x, cos, sin, false, out);
  return record(out, 'rope', [x], (g) => {
    const gx = empty(x.shape, g.dtype, g.backend);
    kernels(g).rope(g, cos, sin, true, gx);
    return [gx];
  });
}

/**
 * Inference: RoPE on q and k, k and v written into KV-cache buffers [B, KV, capacity, D] at device-side
 * positions (int32 [S]); returns the rotated q. Equals rope + scatterInto (one kernel on CUDA).
 */
export function ropeAppend(q: Tensor, k: Tensor, v: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, kCache: Tensor, vCache: Tensor): Tensor {
  assertSameBackend('ropeAppend', q, k, v, cos, sin, positions, kCache, vCache);
  const [b, , s, d] = q.shape;
  const fits = q.ndim === 4 && k.ndim === 4 && v.ndim === 4 && k.shape.every((x, i) => x === v.shape[i]) && k.shape[0] === b && k.shape[2] === s && k.shape[3] === d
    && kCache.ndim === 4 && kCache.shape.every((x, i) => x === vCache.shape[i] && (i === 2 || x === k.shape[i])) && positions.ndim === 1 && positions.shape[0] === s;
  if (!fits) throw new RangeError(`ropeAppend: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}, cache ${shapeStr(kCache.shape)}, positions ${shapeStr(positions.shape)} do not fit together`);
  const qOut = empty(q.shape, q.dtype, q.backend);
  kernels(q).ropeAppend(q, k, v, cos, sin, positions, qOut, kCache, vCache);
  return qOut;
}

/** silu(gate) * up */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  assertSameBackend('swiglu', gate, up);
  const out = empty(gate.shape, gate.dtype, gate.backend);
  kernels(gate).swiglu(gate, up, out);
  return record(out, 'swiglu', [gate, up], (g) => {
    const gg = empty(gate.shape, gate.dtype, gate.backend);
    const gu = empty(up.shape, up.dtype, up.backend);
    kernels(gate).swigluBackward(gate, up, g, gg, gu);
    return [gg, gu];
  });
}

/** softmax(q k^T * scale + mask) v with grouped KV heads: q [B,H,S,D], k/v [B,KV,T,D] -> [B,H,S,D]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  assertSameBackend('attention', q, k, v);
  const [b, h, s, d] = q.shape;
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4 || k.shape[0] !== b || k.shape[3] !== d || h % k.shape[1] !== 0 || v.shape.some((x, i) => x !== k.shape[i])) {
    throw new RangeError(`attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not fit together`);
  }
  const out = empty([b, h, s, d], q.dtype, q.backend);
  const lse = empty([b, h, s], 'float32', q.backend);
  kernels(q).attention(q, k, v, o, out, lse);
  return record(out, 'attention', [q, k, v], (g) => {
    const gq = empty(q.shape, q.dtype, q.backend);
    const gk = empty(k.shape, k.dtype, k.backend);
    const gv = empty(v.shape, v.dtype, v.backend);
    kernels(q).attentionBackward(q, k, v, out, lse, contiguous(g), o, gq, gk, gv);
    return [gq, gk, gv];
  });
}

/** Mean cross-entropy of logits [N, V] against int targets [N], skipping ignoreIndex rows (float32). */
export function crossEntropyLoss(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  assertSameBackend('crossEntropy', logits, targets);
  if (logits.ndim !== 2 || targets.ndim !== 1 || targets.shape[0] !== logits.shape[0]) {
    throw new RangeError(`crossEntropy: logits ${shapeStr(logits.shape)} and targets ${shapeStr(targets.shape)} do not fit`);
  }
  const n = logits.shape[0];
  // float32 losses (float64 when the logits are: gradient checks need the precision)
  const lossType = logits.dtype === 'float64' ? 'float64' : 'float32';
  const losses = empty([n], lossType, logits.backend);
  const lse = empty([n], lossType, logits.backend);
  kernels(logits).crossEntropy(logits, targets, ignoreIndex, losses, lse);
  const perRow = record(losses, 'crossEntropy', [logits], (g) => {
    const gl = empty(logits.shape, logits.dtype, logits.backend);
    kernels(logits).crossEntropyBackward(logits, targets, lse, contiguous(g), ignoreIndex, gl);
    return [gl];
  });
  // the count of scored rows stays on the device (no host sync per training step); all rows ignored
  // gives 0/0 = NaN, as torch's mean reduction does
  const count = sum(cast(compare('ne', targets, ignoreIndex), lossType));
  return div(sum(perRow), count);
}

/**
 * FP8 Linear for inference: x [M, K] float8_e4m3fn times w [N, K] float8_e4m3fn (torch.nn.Linear layout),
 * each with a float32 scalar scale, -> [M, N] in outDtype. On CUDA this is cuBLASLt's FP8 tensor-core GEMM.
 */
export function fp8Linear(x: Tensor, w: Tensor, scaleX: Tensor, scaleW: Tensor, outDtype: 'float32' | 'bfloat16' = 'bfloat16'): Tensor {
  assertSameBackend('fp8Linear', x, w, scaleX, scaleW);
  if (x.dtype !== 'float8_e4m3fn' || w.dtype !== 'float8_e4m3fn') throw new TypeError(`fp8Linear: operands must be float8_e4m3fn, got ${x.dtype} and ${w.dtype}`);
  if (x.ndim !== 2 || w.ndim !== 2 || x.shape[1] !== w.shape[1]) throw new RangeError(`fp8Linear: x ${shapeStr(x.shape)} does not fit w ${shapeStr(w.shape)}`);
  if (scaleX.size !== 1 || scaleW.size !== 1 || scaleX.dtype !== 'float32' || scaleW.dtype !== 'float32') throw new TypeError('fp8Linear: scales must be float32 scalars');
  const out = empty([x.shape[0], w.shape[0]], outDtype, x.backend);
  kernels(x).scaledMatmul(contiguous(x), transpose(contiguous(w), 0, 1), scaleX, scaleW, out);
  return out;
}
