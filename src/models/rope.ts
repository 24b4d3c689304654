// Rotary position embeddings: inverse frequencies for each rope_type exactly as transformers computes
// them (float32 arithmetic mirrored with Math.fround), cos/sin tables, and rotate-half application.

import type { RopeConfig } from './config.js';
import { Tensor, tensor, concat, slice, mul, sub, add, type DType } from '../tensor/index.js';
import type { Backend } from '../backend/backend.js';

const f = Math.fround;

export interface RopeFrequencies {
  invFreq: Float32Array;
  /** multiplies cos and sin (yarn's attention factor; 1 otherwise) */
  attentionScaling: number;
}

function defaultInvFreq(theta: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(Math.pow(theta, f((2 * i) / dim))));
  return out;
}

function llama3(inv: Float32Array, r: RopeConfig): Float32Array {
  const factor = r.factor;
  const low = r.lowFreqFactor!;
  const high = r.highFreqFactor!;
  const oldCtx = r.originalMaxPositionEmbeddings!;
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  return inv.map((fr) => {
    const wavelen = f((2 * Math.PI) / fr);
    let scaled = wavelen > lowWavelen ? f(fr / factor) : fr;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) {
      const smooth = f((f(oldCtx / wavelen) - low) / (high - low));
      scaled = f(f(f(1 - smooth) * f(scaled / factor)) + f(smooth * scaled));
    }
    return scaled;
  });
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function yarn(theta: number, dim: number, r: RopeConfig, maxPos: number): RopeFrequencies {
  const factor = r.factor;
  const original = r.originalMaxPositionEmbeddings ?? maxPos;
  let attentionScaling = r.attentionFactor;
  if (attentionScaling === undefined) {
    attentionScaling = r.mscale !== undefined && r.mscaleAllDim !== undefined && r.mscale && r.mscaleAllDim
      ? yarnMscale(factor, r.mscale) / yarnMscale(factor, r.mscaleAllDim)
      : yarnMscale(factor);
  }
  const betaFast = r.betaFast ?? 32;
  const betaSlow = r.betaSlow ?? 1;
  const corrDim = (rot: number): number => (dim * Math.log(original / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  let lo = corrDim(betaFast);
  let hi = corrDim(betaSlow);
  if (r.truncate !== false) {
    lo = Math.floor(lo);
    hi = Math.ceil(hi);
  }
  lo = Math.max(lo, 0);
  hi = Math.min(hi, dim - 1);
  if (lo === hi) hi += 0.001;
  const half = dim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const posFreq = f(Math.pow(theta, f((2 * i) / dim)));
    const extrap = f(1 / posFreq);
    const interp = f(1 / f(factor * posFreq));
    const ramp = Math.min(1, Math.max(0, f(f(i - lo) / f(hi - lo))));
    const extrapFactor = f(1 - ramp);
    out[i] = f(f(interp * f(1 - extrapFactor)) + f(extrap * extrapFactor));
  }
  return { invFreq: out, attentionScaling };
}

export function ropeFrequencies(r: RopeConfig, headDim: number, maxPos: number): RopeFrequencies {
  switch (r.type) {
    case 'default':
      return { invFreq: defaultInvFreq(r.theta, headDim), attentionScaling: 1 };
    case 'linear':
      return { invFreq: defaultInvFreq(r.theta, headDim).map((x) => f(x / r.factor)), attentionScaling: 1 };
    case 'llama3':
      return { invFreq: llama3(defaultInvFreq(r.theta, headDim), r), attentionScaling: 1 };
    case 'yarn':
      return yarn(r.theta, headDim, r, maxPos);
  }
}

/** cos and sin tables [seq, headDim/2] for positions start..start+seq-1, in `dtype`. */
export function ropeTables(freq: RopeFrequencies, start: number, seq: number, dtype: DType, backend: Backend): { cos: Tensor; sin: Tensor } {
  const half = freq.invFreq.length;
  const c = new Float32Array(seq * half);
  const s = new Float32Array(seq * half);
  const scale = freq.attentionScaling;
  for (let p = 0; p < seq; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f((start + p) * freq.invFreq[i]);
      c[p * half + i] = f(f(Math.cos(angle)) * scale);
      s[p * half + i] = f(f(Math.sin(angle)) * scale);
    }
  }
  return {
    cos: tensor(c, [seq, half], { device: backend }).cast(dtype),
    sin: tensor(s, [seq, half], { device: backend }).cast(dtype),
  };
}

/** x [..., seq, headDim] rotated by rotate-half RoPE: (x1*cos - x2*sin, x2*cos + x1*sin). */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const d = x.shape[x.ndim - 1];
  const x1 = slice(x, -1, 0, d / 2);
  const x2 = slice(x, -1, d / 2, d);
  return concat([sub(mul(x1, cos), mul(x2, sin)), add(mul(x2, cos), mul(x1, sin))], -1);
}
