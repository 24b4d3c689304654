// Autoregressive generation with a KV cache: one prefill over the prompt, then one token per step. On a
// backend with graphs (CUDA) the steps after the prefill replay one recorded decode step (decode-graph.ts).

import type { DecoderLM } from '../models/decoder.js';
import { tensor, tidy, noGrad } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { sampleRow, type SamplingOptions } from './sampling.js';
import { GraphDecoder } from './decode-graph.js';

export interface GenerateOptions extends Partial<SamplingOptions> {
  maxNewTokens: number;
  seed?: number;
  /** generation stops after producing one of these (it is included in the output, like transformers) */
  eosTokenIds?: number[];
  onToken?: (id: number) => void;
  /** replay decode steps from a recorded graph where the backend can (default true); false runs every op eagerly */
  graphs?: boolean;
}

/** Returns the new token ids only. */
export function generate(model: DecoderLM, prompt: readonly number[], o: GenerateOptions): number[] {
  if (prompt.length === 0) throw new RangeError('generate: the prompt needs at least one token (e.g. BOS)');
  const vocab = model.config.vocabSize;
  const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new RangeError(`generate: prompt token id ${bad} is outside the vocabulary [0, ${vocab})`);
  const sampling: SamplingOptions = { greedy: o.greedy ?? true, temperature: o.temperature ?? 1, topP: o.topP ?? 1 };
  const rng = new Rng(o.seed ?? 0);
  const eos = new Set(o.eosTokenIds ?? []);
  const cache = model.newCache(1, prompt.length + o.maxNewTokens);
  const graph = (o.graphs ?? true) && o.maxNewTokens > 1 && GraphDecoder.supports(model) ? new GraphDecoder(model, cache, sampling.greedy || sampling.temperature === 0) : null;
  const out: number[] = [];
  try {
    noGrad(() => {
      let input: readonly number[] = prompt;
      for (let step = 0; step < o.maxNewTokens; step++) {
        let next: number;
        if (graph !== null && step > 0) {
          const r = graph.step(input[0]);
          next = r.kind === 'token' ? r.id : sampleRow(r.row, sampling, rng);
        } else {
          const row = tidy(() => {
            const ids = tensor(input, [1, input.length], { dtype: 'int32', device: model.backend });
            return model.forward(ids, { cache, lastOnly: true }).toFloat32Array();
          });
          next = sampleRow(row, sampling, rng);
        }
        out.push(next);
        o.onToken?.(next);
        if (eos.has(next)) break;
        input = [next];
      }
    });
  } finally {
    try {
      graph?.dispose();
    } finally {
      cache.dispose();
    }
  }
  return out;
}
