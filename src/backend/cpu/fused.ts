// CPU reference implementations of the fused routines (RMSNorm, RoPE, SwiGLU, attention, softmax
// cross-entropy, AdamW). They define the numerics the CUDA kernels are tested against: float64
// arithmetic, one rounding to the output dtype, float32 side outputs (rstd, lse).

import type { AttentionOptions, AdamWHyper, View } from '../backend.js';
import { readIndices, readNumbers, writeNumbers, directOutput } from './strided.js';
import { numel } from '../../tensor/shape.js';
import { decodeToF32, encodeFromF32 } from '../../tensor/codecs.js';
import { allocStorage } from '../../tensor/dtype.js';

const f32 = Math.fround;

/** Rounds a value to what storing it in `like`'s dtype and reading it back gives (HF casts to x.dtype mid-RMSNorm). */
function roundTo(dtype: string, vals: Float64Array): Float64Array {
  if (dtype === 'float64') return vals;
  if (dtype === 'float32') return vals.map(f32);
  const bits = allocStorage(dtype as 'bfloat16', vals.length);
  encodeFromF32(dtype as 'bfloat16', vals, bits);
  const back = new Float32Array(vals.length);
  decodeToF32(dtype as 'bfloat16', bits, back);
  return Float64Array.from(back);
}

export function rmsNormCpu(x: View, weight: View, eps: number, out: View, rstd: View): void {
  const xs = readNumbers(x);
  const w = readNumbers(weight);
  const d = x.shape[x.shape.length - 1];
  const rows = xs.length / d;
  const r = new Float64Array(rows);
  const normed = new Float64Array(xs.length);
  // float32 statistics, as LlamaRMSNorm upcasts to float32 (float64 inputs stay exact)
  const round = x.storage.dtype === 'float64' ? (v: number): number => v : f32;
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += xs[i * d + j] * xs[i * d + j];
    r[i] = round(1 / Math.sqrt(round(round(ss / d) + eps)));
    for (let j = 0; j < d; j++) normed[i * d + j] = xs[i * d + j] * r[i];
  }
  const n2 = roundTo(x.storage.dtype, x.storage.dtype === 'float64' ? normed : normed.map(f32));
  const y = new Float64Array(xs.length);
  for (let i = 0; i < y.length; i++) y[i] = w[i % d] * n2[i];
  writeNumbers(out, y);
  writeNumbers(rstd, r);
}

/** gx = rstd * (g*w - xhat * mean(g*w*xhat)), gw = sum over rows of g * xhat (xhat = x * rstd). */
export function rmsNormBackwardCpu(x: View, weight: View, rstd: View, gOut: View, gx: View, gw: View): void {
  const xs = readNumbers(x);
  const w = readNumbers(weight);
  const r = readNumbers(rstd);
  const g = readNumbers(gOut);
  const d = x.shape[x.shape.length - 1];
  const rows = xs.length / d;
  const outX = new Float64Array(xs.length);
  const outW = new Float64Array(d);
  for (let i = 0; i < rows; i++) {
    let dot = 0;
    for (let j = 0; j < d; j++) {
      const xhat = xs[i * d + j] * r[i];
      dot += g[i * d + j] * w[j] * xhat;
      outW[j] += g[i * d + j] * xhat;
    }
    const mean = dot / d;
    for (let j = 0; j < d; j++) outX[i * d + j] = r[i] * (g[i * d + j] * w[j] - xs[i * d + j] * r[i] * mean);
  }
  writeNumbers(gx, outX);
  writeNumbers(gw, outW);
}

/** Rotate-half RoPE on x [..., S, D] with cos/sin [S, D/2]; `inverse` rotates back (the gradient). */
export function ropeCpu(x: View, cos: View, sin: View, inverse: boolean, out: View): void {
  const xs = readNumbers(x);
  const c = readNumbers(cos);
  const s = readNumbers(sin);
  const rank = x.shape.length;
  const d = x.shape[rank - 1];
  const seq = x.shape[rank - 2];
  const half = d / 2;
  const sign = inverse ? -1 : 1;
  const y = directOutput(out) ?? new Float64Array(xs.length);
  for (let base = 0; base < xs.length; base += d) {
    const p = (base / d) % seq;
    for (let j = 0; j < half; j++) {
      const x1 = xs[base + j];
      const x2 = xs[base + half + j];
      const cj = c[p * half + j];
      const sj = sign * s[p * half + j];
      y[base + j] = x1 * cj - x2 * sj;
      y[base + half + j] = x2 * cj + x1 * sj;
    }
  }
  if (directOutput(out) === null) writeNumbers(out, y);
}

export function swigluCpu(gate: View, up: View, out: View): void {
  const g = readNumbers(gate);
  const u = readNumbers(up);
  const y = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const sg = 1 / (1 + Math.exp(-g[i]));
    // silu rounded to the dtype first, as silu(gate) * up runs as two ops in transformers
    y[i] = g[i] * sg;
  }
  const silu = roundTo(gate.storage.dtype, y);
  for (let i = 0; i < g.length; i++) y[i] = silu[i] * u[i];
  writeNumbers(out, y);
}

export function swigluBackwardCpu(gate: View, up: View, gOut: View, gGate: View, gUp: View): void {
  const g = readNumbers(gate);
  const u = readNumbers(up);
  const go = readNumbers(gOut);
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = 1 / (1 + Math.exp(-g[i]));
    du[i] = go[i] * g[i] * s;
    dg[i] = go[i] * u[i] * s * (1 + g[i] * (1 - s));
  }
  writeNumbers(gGate, dg);
  writeNumbers(gUp, du);
}

/** True when key position t is visible from query position qpos. */
export function visible(o: AttentionOptions, qpos: number, t: number): boolean {
  return (!o.causal || t <= qpos) && (o.window === null || qpos - t < o.window);
}

/**
 * out [B, H, S, D] = softmax(q k^T * scale + mask) v with grouped KV heads (k, v [B, KV, T, D], query head
 * h reads KV head floor(h / (H / KV))); lse [B, H, S] float32 (log-sum-exp of the scaled, masked scores).
 * Probabilities are rounded to q's dtype before multiplying v, as transformers' eager attention does.
 */
export function attentionCpu(q: View, k: View, v: View, opts: AttentionOptions, out: View, lse: View): void {
  if (opts.pastAt) {
    // the device-side past: its value, and the keys cut to the written ones
    const past = readIndices(opts.pastAt)[0];
    const n = Math.min(k.shape[2], Math.max(0, past + q.shape[2]));
    const cut = (x: View): View => ({ storage: x.storage, shape: [x.shape[0], x.shape[1], n, x.shape[3]], strides: x.strides, offset: x.offset });
    attentionCpu(q, cut(k), cut(v), { ...opts, past, pastAt: null }, out, lse);
    return;
  }
  const o = opts;
  const [B, H, S, D] = q.shape;
  const KV = k.shape[1];
  const T = k.shape[2];
  const rep = H / KV;
  const qs = readNumbers(q);
  const ks = readNumbers(k);
  const vs = readNumbers(v);
  const y = new Float64Array(B * H * S * D);
  const l = new Float64Array(B * H * S);
  const p = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / rep);
      const kBase = (b * KV + kvh) * T * D;
      for (let s = 0; s < S; s++) {
        const qBase = ((b * H + h) * S + s) * D;
        const qpos = o.past + s;
        // the visible keys are one contiguous range (causal: t <= qpos; window: qpos - t < window); the
        // others contribute exact zeros, so skipping them changes no bit
        const tLo = o.window === null ? 0 : Math.max(0, qpos - o.window + 1);
        const tHi = o.causal ? Math.min(T - 1, qpos) : T - 1;
        let m = -Infinity;
        for (let t = tLo; t <= tHi; t++) {
          let dot = 0;
          for (let j = 0; j < D; j++) dot += qs[qBase + j] * ks[kBase + t * D + j];
          p[t] = dot * o.scale;
          if (p[t] > m) m = p[t];
        }
        // a -inf score (an infinite q or k) is a masked key: it adds nothing, as before
        let z = 0;
        for (let t = tLo; t <= tHi; t++) z += p[t] === -Infinity ? 0 : Math.exp(p[t] - m);
        l[(b * H + h) * S + s] = tHi < tLo ? -Infinity : m + Math.log(z); // no visible key: lse -inf, output 0
        if (tHi < tLo) continue;
        for (let t = tLo; t <= tHi; t++) p[t] = p[t] === -Infinity ? 0 : Math.exp(p[t] - m) / z;
        const row = p.subarray(tLo, tHi + 1);
        const pr = q.storage.dtype === 'float64' ? row : roundTo(q.storage.dtype, row.map(f32));
        for (let t = tLo; t <= tHi; t++) {
          const w = pr[t - tLo];
          if (w === 0) continue;
          for (let j = 0; j < D; j++) y[qBase + j] += w * vs[kBase + t * D + j];
        }
      }
    }
  }
  writeNumbers(out, y);
  writeNumbers(lse, l);
}

/** Gradients of attention given lse from the forward pass (recomputes the probabilities). */
export function attentionBackwardCpu(
  q: View, k: View, v: View, out: View, lse: View, gOut: View, o: AttentionOptions, gq: View, gk: View, gv: View,
): void {
  if (o.pastAt) throw new Error('attention backward: a device-side past (pastAt) is for inference only');
  const [B, H, S, D] = q.shape;
  const KV = k.shape[1];
  const T = k.shape[2];
  const rep = H / KV;
  const qs = readNumbers(q);
  const ks = readNumbers(k);
  const vs = readNumbers(v);
  const os = readNumbers(out);
  const ls = readNumbers(lse);
  const go = readNumbers(gOut);
  const dq = new Float64Array(qs.length);
  const dk = new Float64Array(ks.length);
  const dv = new Float64Array(vs.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kBase = (b * KV + Math.floor(h / rep)) * T * D;
      for (let s = 0; s < S; s++) {
        const row = (b * H + h) * S + s;
        const qBase = row * D;
        let delta = 0; // sum_j dO_j * O_j = sum_t p_t * dp_t
        for (let j = 0; j < D; j++) delta += go[qBase + j] * os[qBase + j];
        for (let t = 0; t < T; t++) {
          if (!visible(o, o.past + s, t)) continue;
          let dot = 0;
          for (let j = 0; j < D; j++) dot += qs[qBase + j] * ks[kBase + t * D + j];
          const pt = Math.exp(dot * o.scale - ls[row]);
          let dp = 0;
          for (let j = 0; j < D; j++) {
            dp += go[qBase + j] * vs[kBase + t * D + j];
            dv[kBase + t * D + j] += pt * go[qBase + j];
          }
          const ds = pt * (dp - delta) * o.scale;
          for (let j = 0; j < D; j++) {
            dq[qBase + j] += ds * ks[kBase + t * D + j];
            dk[kBase + t * D + j] += ds * qs[qBase + j];
          }
        }
      }
    }
  }
  writeNumbers(gq, dq);
  writeNumbers(gk, dk);
  writeNumbers(gv, dv);
}

/** Per-row loss = lse(logits) - logits[target] (0 where target == ignoreIndex); lse float32. */
export function crossEntropyCpu(logits: View, targets: View, ignoreIndex: number, losses: View, lse: View): void {
  const x = readNumbers(logits);
  const t = readIndices(targets);
  const v = logits.shape[logits.shape.length - 1];
  const rows = x.length / v;
  const loss = new Float64Array(rows);
  const l = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let m = -Infinity;
    for (let j = 0; j < v; j++) m = Math.max(m, x[i * v + j]);
    let z = 0;
    for (let j = 0; j < v; j++) z += Math.exp(x[i * v + j] - m);
    l[i] = m + Math.log(z);
    if (t[i] === ignoreIndex) continue;
    if (t[i] < 0 || t[i] >= v) throw new RangeError(`crossEntropy: target ${t[i]} is outside [0, ${v})`);
    loss[i] = l[i] - x[i * v + t[i]];
  }
  writeNumbers(losses, loss);
  writeNumbers(lse, l);
}

/** gLogits[i, j] = gLoss[i] * (softmax(logits)[i, j] - [j == target[i]]), zero rows for ignored targets. */
export function crossEntropyBackwardCpu(logits: View, targets: View, lse: View, gLoss: View, ignoreIndex: number, gLogits: View): void {
  const x = readNumbers(logits);
  const t = readIndices(targets);
  const l = readNumbers(lse);
  const g = readNumbers(gLoss);
  const v = logits.shape[logits.shape.length - 1];
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length / v; i++) {
    if (t[i] === ignoreIndex) continue;
    for (let j = 0; j < v; j++) out[i * v + j] = g[i] * (Math.exp(x[i * v + j] - l[i]) - (j === t[i] ? 1 : 0));
  }
  writeNumbers(gLogits, out);
}

/** One AdamW step in place on param, m, v (all contiguous, same length); decoupled weight decay. */
export function adamwCpu(param: View, grad: View, m: View, v: View, h: AdamWHyper): void {
  const p = readNumbers(param);
  const g = readNumbers(grad);
  const ms = readNumbers(m);
  const vs = readNumbers(v);
  const n = numel(param.shape);
  const np = new Float64Array(n);
  const nm = new Float64Array(n);
  const nv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    nm[i] = h.beta1 * ms[i] + (1 - h.beta1) * g[i];
    nv[i] = h.beta2 * vs[i] + (1 - h.beta2) * g[i] * g[i];
    const denom = Math.sqrt(nv[i] / h.bc2) + h.eps;
    np[i] = p[i] * (1 - h.lr * h.weightDecay) - h.lr * (nm[i] / h.bc1) / denom;
  }
  writeNumbers(m, nm);
  writeNumbers(v, nv);
  writeNumbers(param, np);
}

/** FP8 GEMM reference: decoded e4m3 values times their scales, float64 accumulation, one rounding. */
export function scaledMatmulCpu(a: View, b: View, scaleA: View, scaleB: View, out: View): void {
  const [m, k] = a.shape;
  const n = b.shape[1];
  const as = readNumbers(a);
  const bs = readNumbers(b);
  const scale = readNumbers(scaleA)[0] * readNumbers(scaleB)[0];
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += as[i * k + p] * bs[p * n + j];
      y[i * n + j] = acc * scale;
    }
  }
  writeNumbers(out, y);
}
