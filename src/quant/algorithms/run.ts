// The recipe's algorithm on a QuantizedModel, before activation calibration: one dispatch shared by the
// whole-model run (src/cli/quantize-run.ts) and layer-by-layer calibration (src/quant/layerwise.ts), so both
// run the same steps in the same order.

import type { QuantizedModel } from '../ptq.js';
import type { Algorithm } from '../recipes/types.js';
import { smoothQuant } from './smoothquant.js';
import { awqLite, awqLitePasses } from './awq.js';
import { awqClip } from './awq-clip.js';
import { weightMse } from './weight-mse.js';
import { gptq, gptqPasses } from './gptq.js';

export interface AlgorithmOptions {
  /** SmoothQuant's α */
  sqAlpha: number;
  /** once per calibration row of each pass (SmoothQuant, AWQ) */
  onBatch?: () => void;
  /** GPTQ: Linears quantized so far, of how many */
  onLinears?: (done: number, total: number) => void;
}

/** Passes over the calibration data the algorithm makes (max, mse and none make none: calibration is separate). */
export function algorithmPasses(q: QuantizedModel, algorithm: Algorithm): number {
  switch (algorithm) {
    case 'smoothquant':
    case 'awq_clip':
      return 1;
    case 'awq_lite':
      return awqLitePasses(q);
    case 'awq_full':
      return awqLitePasses(q) + 1;
    case 'gptq':
      return gptqPasses(q);
    default:
      return 0;
  }
}

/**
 * True when the algorithm's passes read the unquantized model although it quantizes weights itself (AWQ clip
 * searches on the original activations, then calibration sees the clipped weights): layer-by-layer
 * calibration then carries two streams of hidden states.
 */
export function searchesBeforeQuantizing(algorithm: Algorithm): boolean {
  return algorithm === 'awq_clip' || algorithm === 'awq_full';
}

/** Runs the algorithm (SmoothQuant, AWQ lite / clip / full, MSE weight search, GPTQ); max and none do nothing here. */
export function runAlgorithm(q: QuantizedModel, algorithm: Algorithm, batches: readonly (readonly number[])[], o: AlgorithmOptions): void {
  if (algorithm === 'smoothquant') smoothQuant(q, batches, o.sqAlpha, o.onBatch);
  if (algorithm === 'awq_lite' || algorithm === 'awq_full') awqLite(q, batches, o.onBatch);
  if (algorithm === 'awq_clip' || algorithm === 'awq_full') awqClip(q, batches, o.onBatch);
  if (algorithm === 'mse') weightMse(q);
  if (algorithm === 'gptq') gptq(q, batches, o.onLinears);
}
