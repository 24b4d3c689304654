// Loading a checkpoint whose quantized Linear weights are packed (modelopt, compressed-tensors): the model
// is built first with those weights as float32 zeros (the quantization plan needs the model, and the plan
// says how to unpack them), then each loader fills them in from their codes and scales.

import type { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { DecoderLM } from '../models/decoder.js';
import { loadModel, type LoadOptions } from '../models/load.js';

/** The model in `dir`, every weight that has a `<name>_scale` companion (a packed one) loaded as zeros. */
export function loadWithPackedPlaceholders(dir: string, ckpt: SafetensorsCheckpoint, opts: LoadOptions): DecoderLM {
  return loadModel(dir, {
    ...opts,
    storedAs: (name, shape) => (ckpt.has(`${name}_scale`) ? { dtype: 'float32', shape: [...shape], data: new Float32Array(shape.reduce((a, b) => a * b, 1)) } : null),
  });
}
