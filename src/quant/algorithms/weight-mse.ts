// The `mse` algorithm (modelopt.md §1.2): after max calibration, each weight block's amax is searched over
// max|block| x m for m in {0.25, 0.35, ..., 3.95} and m = 1 (the max-calibrated amax itself, so the search
// never does worse than max), keeping the m with the least ||W_block - QDQ(W_block)||² (clipping the largest
// values can buy resolution for the rest). For INT4 groups and NVFP4 blocks (NVFP4's
// global scale stays the tensor max); activations are then max-calibrated as usual. Host-side float64 sums.

import type { QuantizedModel } from '../ptq.js';
import type { WeightScheme } from '../scheme.js';
import { searchBlockAmax, type StaticWeight } from './block-quantizer.js';

export const MSE_MULTIPLIERS: readonly number[] = [1, ...Array.from({ length: 38 }, (_, i) => Math.round((0.25 + 0.1 * i) * 100) / 100)];

/** The weight with every block quantized at its best amax multiplier (dequantized values, and the amax chosen). */
export function mseWeight(s: WeightScheme, w: Float32Array, shape: readonly [number, number], globalAmax?: number): StaticWeight {
  return searchBlockAmax(s, w, shape, MSE_MULTIPLIERS, (_b, d) => d.reduce((acc, v) => acc + v * v, 0), globalAmax);
}

/** Runs the search on every enabled INT4 / NVFP4 weight quantizer; returns how many weights it set. */
export function weightMse(q: QuantizedModel): number {
  let n = 0;
  const shared = q.sharedWeightAmax(); // NVFP4 siblings keep one global scale
  for (const p of q.quantizers) {
    if (p.role !== 'weight' || p.scheme === null || (p.scheme.kind !== 'int4' && p.scheme.kind !== 'nvfp4')) continue;
    const w = q.model.params.get(`${p.module}.weight`)!;
    const orig = w.toFloat32Array();
    const r = mseWeight(p.scheme as WeightScheme, orig, w.shape as [number, number], shared.get(p.module));
    q.setPrequantized(p.module, orig, r.values, r.scales);
    n++;
  }
  return n;
}
