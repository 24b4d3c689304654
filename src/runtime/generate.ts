// Autoregressive generation with a KV cache: one prefill over the prompt, then one token per step. On a
// backend with graphs (CUDA) the steps after the prefill replay one recorded decode step (decode-graph.ts);
// greedy steps there run in chunks that feed their tokens back on the device (a chunk may compute a few
// steps past an end-of-sequence token; those are dropped).

import type { DecoderLM } from '../models/decoder.js';
import type { KVCache } from '../models/kv-cache.js';
import { tensor, tidy, noGrad } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { sampleRow, type SamplingOptions } from './sampling.js';
import { GraphDecoder } from './decode-graph.js';
import { greedyPrefill, type DecodeSession } from './decode-session.js';

export interface GenerateOptions extends Partial<SamplingOptions> {
  maxNewTokens: number;
  seed?: number;
  /** generation stops after producing one of these (it is included in the output, like transformers) */
  eosTokenIds?: number[];
  onToken?: (id: number) => void;
  /** replay decode steps from a recorded graph where the backend can (default true); false runs every op eagerly */
  graphs?: boolean;
  /**
   * keep the KV cache, the step decoder and (greedy) the recorded prefill per prompt length in this session
   * across calls (decode-session.ts); without one, generate() frees everything it made before returning
   */
  session?: DecodeSession;
}

/** Checks the prompt against the model's vocabulary; the sampling settings, random stream and stop tokens of `o`. */
export function generationSetup(model: Pick<DecoderLM, 'config'>, prompt: readonly number[], o: GenerateOptions): { sampling: SamplingOptions; rng: Rng; eos: Set<number> } {
  if (prompt.length === 0) throw new RangeError('generate: the prompt needs at least one token (e.g. BOS)');
  const vocab = model.config.vocabSize;
  const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new RangeError(`generate: prompt token id ${bad} is outside the vocabulary [0, ${vocab})`);
  return { sampling: { greedy: o.greedy ?? true, temperature: o.temperature ?? 1, topP: o.topP ?? 1 }, rng: new Rng(o.seed ?? 0), eos: new Set(o.eosTokenIds ?? []) };
}

/** Returns the new token ids only. */
export function generate(model: DecoderLM, prompt: readonly number[], o: GenerateOptions): number[] {
  const { sampling, rng, eos } = generationSetup(model, prompt, o);
  const greedy = sampling.greedy || sampling.temperature === 0;
  const session = o.session;
  let cache: KVCache;
  let graph: GraphDecoder | null;
  if (session !== undefined) {
    if (session.model !== model) throw new RangeError('generate: the session was made for another model');
    ({ cache, decoder: graph } = session.begin(prompt.length + o.maxNewTokens, greedy, o.graphs ?? true));
  } else {
    cache = model.newCache(1, prompt.length + o.maxNewTokens);
    graph = (o.graphs ?? true) && o.maxNewTokens > 1 && GraphDecoder.supports(model) ? new GraphDecoder(model, cache, greedy) : null;
  }
  const out: number[] = [];
  try {
    noGrad(() => {
      let input: readonly number[] = prompt;
      // greedy decoding on a graph backend runs chunks of steps that feed themselves on the device; the
      // chunks grow (1, 2, 4, ... 32 steps) so the first tokens still arrive quickly
      let pending: number[] = [];
      let chunk = 1;
      for (let step = 0; step < o.maxNewTokens; step++) {
        let next: number;
        if (graph !== null && step > 0 && graph.greedy) {
          if (pending.length === 0) {
            pending = graph.greedySteps(input[0], Math.min(chunk, o.maxNewTokens - step));
            chunk = Math.min(2 * chunk, 32);
          }
          next = pending.shift()!;
        } else if (graph !== null && step > 0) {
          const r = graph.step(input[0]);
          next = r.kind === 'token' ? r.id : sampleRow(r.row, sampling, rng);
        } else if (step === 0 && greedy) {
          // the argmax on the device; with a session, recorded after its first run at this length
          next = session !== undefined ? session.prefillGreedy(input) : greedyPrefill(model, cache, input);
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
    session?.end();
    if (session === undefined) {
      try {
        graph?.dispose();
      } finally {
        cache.dispose();
      }
    }
  }
  return out;
}
