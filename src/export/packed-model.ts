// Loading a checkpoint whose quantized Linear weights are packed (modelopt, compressed-tensors): the model
// is built first with those weights as float32 zeros (the quantization plan needs the model, and the plan
// says how to unpack them), then applyPacked fills them in from their codes and scales through the format's
// readers and applies the plan.

import type { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { DecoderLM } from '../models/decoder.js';
import { loadModel, type LoadOptions } from '../models/load.js';
import type { QuantizedModel } from '../quant/ptq.js';
import type { ActScheme, WeightScheme } from '../quant/scheme.js';

/** The model in `dir`, every weight that has a `<name>_scale` companion (a packed one) loaded as zeros. */
export function loadWithPackedPlaceholders(dir: string, ckpt: SafetensorsCheckpoint, opts: LoadOptions): DecoderLM {
  return loadModel(dir, {
    ...opts,
    storedAs: (name, shape) => (ckpt.has(`${name}_scale`) ? { dtype: 'float32', shape: [...shape], data: new Float32Array(shape.reduce((a, b) => a * b, 1)) } : null),
  });
}

/** How one checkpoint format gives back what each quantizer of the plan needs. */
export interface PackedReaders {
  /** a quantized Linear's weight values, dequantized from its codes and scales */
  weight(module: string, scheme: WeightScheme, shape: [number, number]): Float32Array;
  /** an input quantizer's calibrated amax, or null for a dynamic format (nothing stored) */
  inputAmax(module: string, scheme: ActScheme): number | null;
  /** a K / V cache quantizer's calibrated amax */
  kvAmax(layer: number, which: 'k' | 'v'): number;
}

/** Fills q (planned on a model loaded with placeholders) from a checkpoint, then applies it: the fake-quantized model. */
export function applyPacked(q: QuantizedModel, r: PackedReaders): QuantizedModel {
  const amax: Record<string, number> = {};
  for (const x of q.quantizers) {
    if (x.scheme === null) continue;
    if (x.role === 'weight') {
      const shape = q.model.params.get(`${x.module}.weight`)!.shape as [number, number];
      const values = r.weight(x.module, x.scheme as WeightScheme, shape);
      q.setPrequantized(x.module, values, values);
    } else if (x.role === 'input') {
      const a = r.inputAmax(x.module, x.scheme as ActScheme);
      if (a !== null) amax[x.name] = a;
    } else {
      amax[x.name] = r.kvAmax(Number(x.module), x.name.endsWith('k_bmm_quantizer') ? 'k' : 'v');
    }
  }
  q.setAmax(amax);
  q.apply();
  return q;
}
