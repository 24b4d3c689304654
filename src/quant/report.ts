// The quality cost of a quantization: perplexity before and after on held-out windows, the mean KL
// divergence of the quantized model's next-token distribution from the original's, per-layer weight SQNR,
// effective bits per Linear weight and the parameter size a deployed checkpoint would have.

import type { LogitsModel } from '../models/logits-model.js';
import { logpNll, type PerplexityResult } from '../eval/perplexity.js';
import { cast, logSoftmax, mul, noGrad, sub, sum, tensor, tidy, unary } from '../tensor/index.js';
import { DTYPE_INFO } from '../tensor/dtype.js';
import type { QuantizedModel, WeightStats } from './ptq.js';

export interface KlResult {
  /** mean over predicted positions of KL(P_base || P_quant), nats */
  mean: number;
  tokens: number;
}

/** Mean KL(P_base || P_other) over every position of every row (all positions predict a next token). */
export function meanKl(base: LogitsModel, other: LogitsModel, rows: readonly (readonly number[])[], onRow?: (tokens: number) => void): KlResult {
  return scoreAgainst(base, other, rows, onRow).kl;
}

/**
 * `other`'s perplexity and its mean KL(base || other) over the same rows in one pass: both models run once
 * per row (perplexity() then meanKl() would run `other` twice).
 */
export function scoreAgainst(base: LogitsModel, other: LogitsModel, rows: readonly (readonly number[])[], onRow?: (tokens: number) => void): { ppl: PerplexityResult | null; kl: KlResult } {
  let total = 0;
  let tokens = 0;
  let nllSum = 0;
  let predicted = 0;
  for (const row of rows) {
    const [klRow, nllRow] = noGrad(() =>
      tidy(() => {
        const ids = (m: LogitsModel) => tensor(row, [1, row.length], { dtype: 'int32', device: m.backend });
        const lb = logSoftmax(cast(base.forward(ids(base)), 'float32'), -1);
        const lo = logSoftmax(cast(other.forward(ids(other)), 'float32'), -1);
        const nll = row.length < 2 ? 0 : logpNll(lo, row);
        // both models may live on different backends: compare on the base model's
        const loOnBase = lo.backend === lb.backend ? lo : tensor(lo.toFloat32Array(), [...lo.shape], { device: lb.backend });
        return [sum(mul(unary('exp', lb), sub(lb, loOnBase))).toFloat64Array()[0]!, nll] as const;
      }),
    );
    total += klRow;
    tokens += row.length;
    if (row.length >= 2) {
      nllSum += nllRow;
      predicted += row.length - 1;
    }
    onRow?.(row.length);
  }
  const nll = nllSum / predicted;
  return { ppl: predicted === 0 ? null : { ppl: Math.exp(nll), nll, tokens: predicted }, kl: { mean: tokens === 0 ? NaN : total / tokens, tokens } };
}

export interface SizeSummary {
  /** bytes of all parameters as the source checkpoint stores them (its dtype) */
  sourceBytes: number;
  /** bytes with each quantized Linear weight at its format's bits (scales included) */
  quantizedBytes: number;
  /** average bits per element over all Linear weights (unquantized ones at their stored dtype) */
  linearBitsPerWeight: number;
}

/** `storedBits(name)`: bits per element of a parameter in the source checkpoint (not the compute dtype). */
export function sizeSummary(q: QuantizedModel, linearWeights: readonly string[], storedBits: (name: string) => number = () => 8 * DTYPE_INFO[q.model.dtype].bytes): SizeSummary {
  const stats = new Map<string, WeightStats>(q.weightStats.map((s) => [s.name.replace(/\.weight_quantizer$/, '.weight'), s]));
  let source = 0;
  let quant = 0;
  for (const [name, t] of q.model.params) {
    const n = t.size;
    const bits = storedBits(name);
    source += (n * bits) / 8;
    const s = stats.get(name);
    quant += s === undefined ? (n * bits) / 8 : (n * s.bitsPerWeight) / 8;
  }
  let linBits = 0;
  let linN = 0;
  for (const w of linearWeights) {
    const n = q.model.params.get(w)!.size;
    const s = stats.get(w);
    linBits += n * (s === undefined ? storedBits(w) : s.bitsPerWeight);
    linN += n;
  }
  return { sourceBytes: source, quantizedBytes: quant, linearBitsPerWeight: linBits / linN };
}

export interface QuantReport {
  recipe: { preset: string | null; algorithm: string; calibrator: string; kvCache: string | null; sqAlpha?: number };
  calibration: { samples: number; seqLen: number; tokens: number };
  evaluation: { windows: number; tokens: number; before: PerplexityResult | null; after: PerplexityResult | null; kl: KlResult | null };
  size: SizeSummary;
  quantizers: { name: string; role: string; scheme: string | null; amax: number | null; skipped: string | null }[];
  weights: WeightStats[];
}

export function quantizerRows(q: QuantizedModel): QuantReport['quantizers'] {
  return q.quantizers.map((p) => ({ name: p.name, role: p.role, scheme: p.scheme === null ? null : p.scheme.kind, amax: p.amax, skipped: p.skipped }));
}


/** Terminal summary of a report. */
export function formatReport(r: QuantReport): string {
  const lines: string[] = [];
  const e = r.evaluation;
  const fmt = (x: number | undefined, d = 4): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  lines.push(`recipe: ${r.recipe.preset ?? 'custom'} (algorithm ${r.recipe.algorithm}, calibrator ${r.recipe.calibrator}${r.recipe.kvCache ? `, KV cache ${r.recipe.kvCache}` : ''})`);
  lines.push(`calibration: ${r.calibration.samples} x ${r.calibration.seqLen} tokens`);
  if (e.before && e.after) {
    lines.push(`perplexity on ${e.tokens} held-out predictions: ${fmt(e.before.ppl)} -> ${fmt(e.after.ppl)} (${fmt((100 * (e.after.ppl - e.before.ppl)) / e.before.ppl, 2)}%)`);
  } else {
    lines.push('perplexity: no held-out windows (give --eval-data or more calibration text)');
  }
  if (e.kl) lines.push(`mean KL(original || quantized) per token: ${fmt(e.kl.mean, 6)} nats`);
  lines.push(`Linear weights: ${fmt(r.size.linearBitsPerWeight, 3)} bits per weight; parameters ${(r.size.sourceBytes / 1e6).toFixed(3)} MB -> ${(r.size.quantizedBytes / 1e6).toFixed(3)} MB`);
  const enabled = r.quantizers.filter((q) => q.scheme !== null).length;
  lines.push(`quantizers: ${enabled} enabled, ${r.quantizers.length - enabled} left unquantized`);
  for (const q of r.quantizers) if (q.skipped !== null) lines.push(`  left unquantized: ${q.name}: ${q.skipped}`);
  if (r.weights.length > 0) {
    const worst = [...r.weights].sort((a, b) => a.sqnrDb - b.sqnrDb).slice(0, 5);
    lines.push(`lowest weight SQNR: ${worst.map((w) => `${w.name.replace(/\.weight_quantizer$/, '')} ${fmt(w.sqnrDb, 1)} dB`).join(', ')}`);
  }
  return lines.join('\n');
}
