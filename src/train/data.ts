// Training data: documents tokenized (each with the tokenizer's BOS and an EOS after it, when the tokenizer
// has them), concatenated and cut into rows of seqLen + 1 tokens (inputs are a row's first seqLen, targets
// its last seqLen). The last rows are the validation split. Batches are drawn from a seeded permutation per
// epoch, so the rows a step uses depend only on (seed, step): a resumed run sees exactly the batches the
// interrupted one would have.

import type { Tokenizer } from '../io/tokenizer.js';
import { Rng } from '../tensor/random.js';
import { UserError } from '../util/errors.js';

export interface PackedData {
  train: number[][];
  val: number[][];
  /** tokens in all rows */
  tokens: number;
}

export function packDocuments(tok: Tokenizer, docs: readonly string[], seqLen: number, valFraction: number, eos: number | null, where: string): PackedData {
  const ids: number[] = [];
  for (const d of docs) {
    for (const id of tok.encode(d)) ids.push(id);
    if (eos !== null) ids.push(eos);
  }
  const rows: number[][] = [];
  for (let i = 0; i + seqLen + 1 <= ids.length; i += seqLen + 1) rows.push(ids.slice(i, i + seqLen + 1));
  if (rows.length < 2) throw new UserError(`${where}: ${ids.length} tokens make ${rows.length} row(s) of ${seqLen + 1}; training needs at least 2 (one for validation): give more text or a smaller --seq-len`);
  const nVal = valFraction > 0 ? Math.max(1, Math.round(rows.length * valFraction)) : 0;
  if (nVal >= rows.length) throw new UserError(`${where}: --val-fraction ${valFraction} leaves no training rows`);
  return { train: rows.slice(0, rows.length - nVal), val: rows.slice(rows.length - nVal), tokens: rows.length * (seqLen + 1) };
}

/** Row indices of a batch: sample i of the run is row perm_epoch[i mod n] with epoch = floor(i / n). */
export class BatchSampler {
  private readonly perms = new Map<number, Int32Array>();
  constructor(
    private readonly n: number,
    private readonly seed: number,
  ) {}

  /** The rows of micro-batch `micro` of optimizer step `step` (batch rows each, accum micro-batches per step). */
  rows(step: number, micro: number, accum: number, batch: number): number[] {
    const first = (step * accum + micro) * batch;
    return Array.from({ length: batch }, (_, b) => {
      const i = first + b;
      return this.perm(Math.floor(i / this.n))[i % this.n]!;
    });
  }

  private perm(epoch: number): Int32Array {
    let p = this.perms.get(epoch);
    if (p === undefined) {
      const rng = new Rng(this.seed * 1_000_003 + epoch);
      p = Int32Array.from({ length: this.n }, (_, i) => i);
      for (let i = this.n - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      this.perms.clear(); // one epoch at a time is enough
      this.perms.set(epoch, p);
    }
    return p;
  }
}
