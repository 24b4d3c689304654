// SmoothQuant (modelopt.md §1.2 `smoothquant`): moves activation outliers into the weights before INT8
// W8A8 quantization. For each Linear whose input quantizer is INT8: a_j = max |x_j| over the calibration
// data (per input channel), w_j = max_i |W_ij|, s_j = w_j^(1-α) / a_j^α clamped to [1e-4, 1e4] (s_j = 1 where
// a_j is ~0); the input becomes x·s (pre_quant_scale) and the weight W/s. Model Optimizer's default α is 1.0
// (the paper's is 0.5). The per-tensor input amax is then calibrated on the smoothed input.

import { amax as absMax, type Tensor } from '../../tensor/index.js';
import { smoothingUnits, type QuantizedModel } from '../ptq.js';

const S_MIN = 1e-4;
const S_MAX = 1e4;
/** activation amax below which a channel is left unsmoothed */
const A_EPS = 1e-8;

/** Per-input-channel max |x| of the named Linears over the batches. */
export function channelAmax(q: QuantizedModel, batches: readonly (readonly number[])[], linears: ReadonlySet<string>, onBatch?: () => void): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  q.forEachInput(batches, (name, x: Tensor) => {
    if (!linears.has(name)) return;
    const m = absMax(x, x.shape.slice(0, -1).map((_, i) => i)).toFloat32Array();
    const prev = out.get(name);
    if (prev === undefined) out.set(name, m);
    else for (let j = 0; j < m.length; j++) prev[j] = Math.max(prev[j]!, m[j]!);
  }, undefined, onBatch);
  return out;
}

/**
 * Sets q.smooth for every Linear with an INT8 input quantizer (fused siblings q/k/v and gate/up share one s:
 * w_j is then the max over all their rows); returns how many Linears were smoothed.
 */
export function smoothQuant(q: QuantizedModel, batches: readonly (readonly number[])[], alpha = 1.0, onBatch?: () => void): number {
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`smoothquant: alpha ${alpha} must be in [0, 1]`);
  const targets = new Set(q.quantizers.filter((p) => p.role === 'input' && p.scheme?.kind === 'int8').map((p) => p.module));
  const act = channelAmax(q, batches, targets, onBatch);
  for (const unit of smoothingUnits(q.model, targets, { exclude: q.noSmoothing })) {
    const cols = act.get(unit[0]!)!.length;
    const a = new Float32Array(cols);
    const wmax = new Float32Array(cols);
    for (const lin of unit) {
      const al = act.get(lin)!;
      const wv = q.model.params.get(`${lin}.weight`)!.toFloat32Array();
      for (let j = 0; j < cols; j++) a[j] = Math.max(a[j]!, al[j]!);
      for (let i = 0; i < wv.length; i++) wmax[i % cols] = Math.max(wmax[i % cols]!, Math.abs(wv[i]!));
    }
    const s = new Float32Array(cols);
    for (let j = 0; j < cols; j++) {
      s[j] = a[j]! < A_EPS || wmax[j] === 0 ? 1 : Math.min(Math.max(wmax[j]! ** (1 - alpha) / a[j]! ** alpha, S_MIN), S_MAX);
    }
    for (const lin of unit) q.smooth.set(lin, s);
  }
  return targets.size;
}
