// Perplexity over every next-token prediction of each row: exp(mean over rows and positions of
// -log p(x[t+1] | x[..t])). Rows are scored independently (no state carried across rows).

import type { LogitsModel } from '../models/logits-model.js';
import { tensor, tidy, noGrad, logSoftmax, gather, cast, type Tensor } from '../tensor/index.js';

export interface PerplexityResult {
  ppl: number;
  /** mean negative log-likelihood per predicted token (nats) */
  nll: number;
  /** number of predicted tokens */
  tokens: number;
}

/** Sum of -log p over one row's next-token predictions. */
export function rowNll(model: LogitsModel, row: readonly number[]): number {
  return noGrad(() =>
    tidy(() => {
      const ids = tensor(row, [1, row.length], { dtype: 'int32', device: model.backend });
      return logpNll(logSoftmax(cast(model.forward(ids), 'float32'), -1), row);
    }),
  );
}

/** Sum of -log p(row[t + 1]) from a row's log-probabilities logp [1, S, V] (float32). */
export function logpNll(logp: Tensor, row: readonly number[]): number {
  const targets = tensor(row.slice(1), [1, row.length - 1, 1], { dtype: 'int32', device: logp.backend });
  const picked = gather(logp.slice(1, 0, row.length - 1), 2, targets).toFloat64Array();
  let s = 0;
  for (const v of picked) s -= v;
  return s;
}

export function perplexity(model: LogitsModel, rows: readonly (readonly number[])[], onRow?: (tokens: number) => void): PerplexityResult {
  let nllSum = 0;
  let tokens = 0;
  for (const row of rows) {
    if (row.length < 2) continue;
    nllSum += rowNll(model, row);
    tokens += row.length - 1;
    onRow?.(row.length - 1);
  }
  if (tokens === 0) throw new RangeError('perplexity: no row has two or more tokens, so nothing is predicted');
  const nll = nllSum / tokens;
  return { ppl: Math.exp(nll), nll, tokens };
}

/** Splits a token stream into consecutive windows of seqLen (a final shorter window is kept if >= 2). */
export function windows(ids: readonly number[], seqLen: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < ids.length; i += seqLen) {
    const w = ids.slice(i, i + seqLen);
    if (w.length >= 2) rows.push(w);
  }
  return rows;
}
