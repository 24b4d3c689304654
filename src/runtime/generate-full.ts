// Generation for a model without a KV cache (a LogitsModel such as an exported ONNX graph in ONNX Runtime):
// each step runs the whole sequence so far and samples from its last position, so a step costs a full
// forward of the prefix. Same sampling, stopping and output as generate() (generate.ts), which decodes with
// a KV cache and is what a DecoderLM uses.

import type { LogitsModel } from '../models/logits-model.js';
import { tensor, tidy, noGrad } from '../tensor/index.js';
import { sampleRow } from './sampling.js';
import { generationSetup, type GenerateOptions } from './generate.js';

/** Returns the new token ids only. */
export function generateFullPrefix(model: LogitsModel, prompt: readonly number[], o: GenerateOptions): number[] {
  const { sampling, rng, eos } = generationSetup(model, prompt, o);
  const seq = [...prompt];
  const out: number[] = [];
  noGrad(() => {
    for (let step = 0; step < o.maxNewTokens; step++) {
      const row = tidy(() => {
        const logits = model.forward(tensor(seq, [1, seq.length], { dtype: 'int32', device: model.backend }));
        return logits.slice(1, seq.length - 1, seq.length).toFloat32Array();
      });
      const next = sampleRow(row, sampling, rng);
      out.push(next);
      seq.push(next);
      o.onToken?.(next);
      if (eos.has(next)) break;
    }
  });
  return out;
}
