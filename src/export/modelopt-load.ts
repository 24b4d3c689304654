// Loading a Model Optimizer unified checkpoint (ours or one with the same layout) back into a runnable
// model: hf_quant_config.json names the preset, the preset's rules and the model's shapes give the plan
// (which Linears and K/V are quantized), the checker holds the tensors to it, and then every quantized
// weight is unpacked and dequantized from its codes and scales, input_scale / k_scale / v_scale become the
// calibrated amax (scale x bound), pre_quant_scale the smoothing factors. The result fake-quantizes
// activations exactly as the quantization state it was exported from did.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { readJsonFile } from '../io/json-file.js';
import type { LoadOptions } from '../models/load.js';
import { applyPacked, loadWithPackedPlaceholders } from './packed-model.js';
import { layerPrefix } from '../models/decoder.js';
import { QuantizedModel } from '../quant/ptq.js';
import { applyGroupSize, presetRecipe } from '../quant/recipes/index.js';
import { dequantizeWeight } from '../quant/scheme.js';
import { HF_QUANT_CONFIG, INPUT_BOUND, KV_BOUND, parseQuantAlgo, weightFromTensors, weightSpecs } from './modelopt-format.js';
import { checkQuantizedTensors } from './modelopt-check.js';

export function isModeloptCheckpoint(dir: string): boolean {
  return existsSync(join(dir, HF_QUANT_CONFIG));
}

/** The checkpoint in `dir` as a fake-quantized model (weights from their packed codes). */
export function loadModelopt(dir: string, opts: LoadOptions = {}): QuantizedModel {
  const cfgPath = join(dir, HF_QUANT_CONFIG);
  const algo = parseQuantAlgo(readJsonFile(cfgPath, 'Model Optimizer quantization config'), cfgPath);
  let recipe = presetRecipe(algo.preset, algo.kvPreset ?? undefined);
  if (algo.quantAlgo === 'W4A16_AWQ' && algo.groupSize !== null && algo.groupSize !== 128) recipe = applyGroupSize(recipe, algo.groupSize);
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const read = (name: string): RawTensor | undefined => (ckpt.has(name) ? ckpt.read(name) : undefined);
    const model = loadWithPackedPlaceholders(dir, ckpt, opts);
    const q = new QuantizedModel(model, recipe);
    for (const name of ckpt.names()) {
      if (name.endsWith('.pre_quant_scale')) q.smooth.set(name.slice(0, -'.pre_quant_scale'.length), read(name)!.data as Float32Array);
    }
    checkQuantizedTensors(q, algo, read, dir, ckpt.names());
    const scalar = (name: string): number => scalarOf(read(name)!);
    return applyPacked(q, {
      weight: (m, scheme, shape) => {
        const tensors = Object.fromEntries(Object.keys(weightSpecs(scheme, shape)).map((s) => [s, read(`${m}.${s}`)!]));
        return dequantizeWeight(weightFromTensors(scheme, shape, tensors));
      },
      inputAmax: (m, scheme) => {
        const bound = INPUT_BOUND[scheme.kind as keyof typeof INPUT_BOUND];
        return bound === undefined ? null : scalar(`${m}.input_scale`) * bound;
      },
      kvAmax: (layer, which) => scalar(`${layerPrefix(layer)}.self_attn.${which}_proj.${which}_scale`) * KV_BOUND,
    });
  } finally {
    ckpt.close();
  }
}

const scalarOf = (t: RawTensor): number => Number(t.data[0]);
