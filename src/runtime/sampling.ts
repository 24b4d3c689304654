// Choosing the next token from a row of logits: greedy (argmax, first index on ties like torch.argmax),
// or temperature + nucleus (top-p) sampling with a seeded generator.

import { Rng } from '../tensor/random.js';

export interface SamplingOptions {
  greedy: boolean;
  temperature: number;
  topP: number;
}

/** The index of the largest logit: the first on ties, and the first NaN if there is one (as torch.argmax and the device argmax). */
export function argmaxRow(logits: ArrayLike<number>): number {
  let best = -Infinity;
  let bi = 0;
  for (let i = 0; i < logits.length; i++) {
    if (Number.isNaN(logits[i])) return i;
    if (logits[i] > best) {
      best = logits[i];
      bi = i;
    }
  }
  return bi;
}

export function sampleRow(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (o.greedy || o.temperature === 0) return argmaxRow(logits);
  const n = logits.length;
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, logits[i]);
  const probs = new Float64Array(n);
  let z = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i] - m) / o.temperature);
    z += probs[i];
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a]);
  // smallest prefix of the sorted distribution whose mass reaches top_p (always at least one token)
  let kept = 0;
  let mass = 0;
  while (kept < n && (kept === 0 || mass < o.topP * z)) mass += probs[order[kept++]];
  let u = rng.next() * mass;
  for (let j = 0; j < kept; j++) {
    u -= probs[order[j]];
    if (u < 0) return order[j];
  }
  return order[kept - 1];
}
