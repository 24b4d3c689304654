// Loading a Model Optimizer unified checkpoint (ours or one with the same layout) back into a runnable
// model: hf_quant_config.json gives the plan (modelopt-plan.ts loadRecipe: the quant_algo's preset rules
// minus exclude_modules, or MIXED_PRECISION's quantized_layers, plus the K/V rules), the checker holds the
// tensors to it, and then every quantized weight is unpacked and dequantized from its codes and scales,
// input_scale / k_scale / v_scale become the calibrated amax (scale x bound), pre_quant_scale the smoothing
// factors. The result fake-quantizes activations exactly as the quantization state it was exported from did.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { readJsonFile } from '../io/json-file.js';
import type { LoadOptions } from '../models/load.js';
import { applyPacked, loadWithPackedPlaceholders } from './packed-model.js';
import { linearNames, QuantizedModel } from '../quant/ptq.js';
import { dequantizeWeight } from '../quant/scheme.js';
import { UserError } from '../util/errors.js';
import { HF_QUANT_CONFIG, parseQuantAlgo, type QuantAlgo } from './modelopt-format.js';
import { INPUT_BOUND, KV_BOUND, weightFromTensors, weightSpecs } from './modelopt-tensors.js';
import { kvScaleName, loadRecipe } from './modelopt-plan.js';
import { checkQuantizedTensors } from './modelopt-check.js';

export function isModeloptCheckpoint(dir: string): boolean {
  return existsSync(join(dir, HF_QUANT_CONFIG));
}

/** The checkpoint in `dir` as a fake-quantized model (weights from their packed codes). */
export function loadModelopt(dir: string, opts: LoadOptions = {}): QuantizedModel {
  const cfgPath = join(dir, HF_QUANT_CONFIG);
  const cfg = readJsonFile(cfgPath, 'Model Optimizer quantization config');
  const algo = parseQuantAlgo(cfg, cfgPath);
  const exclude = (cfg as { quantization: { exclude_modules?: unknown } }).quantization.exclude_modules;
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const read = (name: string): RawTensor | undefined => (ckpt.has(name) ? ckpt.read(name) : undefined);
    const model = loadWithPackedPlaceholders(dir, ckpt, opts);
    const excludeGlobs = Array.isArray(exclude) ? exclude.filter((e): e is string => typeof e === 'string') : [];
    const q = new QuantizedModel(model, loadRecipe(algo, { exclude: excludeGlobs, linears: linearNames(model), hasInputScale: (l) => ckpt.has(`${l}.input_scale`) }));
    checkListedLayers(q, algo, cfgPath);
    for (const name of ckpt.names()) {
      if (name.endsWith('.pre_quant_scale')) q.smooth.set(name.slice(0, -'.pre_quant_scale'.length), read(name)!.data as Float32Array);
    }
    checkQuantizedTensors(q, algo, read, dir, ckpt.names());
    const scalar = (name: string): number => Number(read(name)!.data[0]);
    return applyPacked(q, {
      weight: (m, scheme, shape) => {
        const tensors = Object.fromEntries(Object.keys(weightSpecs(scheme, shape)).map((s) => [s, read(`${m}.${s}`)!]));
        return dequantizeWeight(weightFromTensors(scheme, shape, tensors));
      },
      inputAmax: (m, scheme) => {
        const bound = INPUT_BOUND[scheme.kind as keyof typeof INPUT_BOUND];
        return bound === undefined ? null : scalar(`${m}.input_scale`) * bound;
      },
      kvAmax: (layer, which) => scalar(kvScaleName(layer, which)) * KV_BOUND,
    });
  } finally {
    ckpt.close();
  }
}

/** MIXED_PRECISION: every quantized_layers entry must be a Linear of this model that its format fits. */
function checkListedLayers(q: QuantizedModel, algo: QuantAlgo, path: string): void {
  if (algo.layers === null) return;
  const linears = new Set(linearNames(q.model));
  for (const [name, cfg] of algo.layers) {
    if (!linears.has(name)) throw new UserError(`${path}: quantized_layers lists ${name}, which is not a Linear of this model (a config for another model?)`);
    const w = q.quantizers.find((x) => x.name === `${name}.weight_quantizer`);
    if (w?.scheme === null) throw new UserError(`${path}: quantized_layers lists ${name} as ${cfg.quant_algo}, but ${w.skipped ?? 'its shape does not fit that format'}`);
  }
}
