// Loading a compressed-tensors checkpoint mopt wrote back into a runnable model: config.json's
// quantization_config names the scheme, which maps back to a mopt preset; the preset's rules and the model's
// shapes give the plan (which Linears and K/V are quantized), which must agree with the config's ignore list;
// the checker holds the tensors to the plan; then every quantized weight is unpacked and dequantized, and the
// input / K / V scales become the calibrated amax. Smoothing was folded into the weights on export, so the
// result fake-quantizes activations as the quantization state it was exported from did.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { readJsonFile } from '../io/json-file.js';
import type { LoadOptions } from '../models/load.js';
import { applyPacked, loadWithPackedPlaceholders } from './packed-model.js';
import { layerPrefix } from '../models/decoder.js';
import { QuantizedModel, linearNames } from '../quant/ptq.js';
import { applyGroupSize, presetRecipe } from '../quant/recipes/index.js';
import { UserError } from '../util/errors.js';
import { QUANT_METHOD, parseQuantizationConfig } from './compressed-tensors-scheme.js';
import { KV_BOUND, inputAmax, inputSpec, weightSpecs, weightValues } from './compressed-tensors-tensors.js';
import { checkCompressedTensors } from './compressed-tensors-check.js';

/** True when `dir`/config.json declares quant_method "compressed-tensors". */
export function isCompressedTensorsCheckpoint(dir: string): boolean {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return false;
  try {
    const cfg = readJsonFile(path, 'model config') as { quantization_config?: { quant_method?: unknown } } | null;
    return cfg?.quantization_config?.quant_method === QUANT_METHOD;
  } catch {
    return false; // an unreadable config.json is reported by the model loader, with its own message
  }
}

/** The checkpoint in `dir` as a fake-quantized model (weights from their packed codes). */
export function loadCompressedTensors(dir: string, opts: LoadOptions = {}): QuantizedModel {
  const cfgPath = join(dir, 'config.json');
  const config = readJsonFile(cfgPath, 'model config') as { quantization_config?: unknown };
  const { scheme, ignore } = parseQuantizationConfig(config.quantization_config, cfgPath);
  let recipe = presetRecipe(scheme.preset, scheme.kv ? 'fp8' : undefined);
  if (scheme.weights.group_size !== null && scheme.preset === 'int4_awq' && scheme.weights.group_size !== 128) recipe = applyGroupSize(recipe, scheme.weights.group_size);
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const read = (name: string): RawTensor | undefined => (ckpt.has(name) ? ckpt.read(name) : undefined);
    const model = loadWithPackedPlaceholders(dir, ckpt, opts);
    const q = new QuantizedModel(model, recipe);
    const planned = new Set(q.quantizers.filter((x) => x.role === 'weight' && x.scheme !== null).map((x) => x.module));
    const left = linearNames(model).filter((l) => !planned.has(l)).map((l) => (l === 'model.embed_tokens' ? 'lm_head' : l));
    const extra = ignore.find((l) => !left.includes(l));
    const missing = left.find((l) => !ignore.includes(l));
    if (extra !== undefined || missing !== undefined) {
      throw new UserError(
        `${cfgPath} quantization_config: ignore ${extra !== undefined ? `lists ${extra}, which` : `omits ${missing}, which`} ${scheme.label} with this model's shapes ` +
          `${extra !== undefined ? 'quantizes' : 'leaves unquantized'}; the config disagrees with the tensors`,
      );
    }
    checkCompressedTensors(q, scheme, read, dir, ckpt.names());
    return applyPacked(q, {
      weight: (m, scheme, shape) => weightValues(scheme, shape, Object.fromEntries(Object.keys(weightSpecs(scheme, shape)).map((s) => [s, read(`${m}.${s}`)!]))),
      inputAmax: (m, scheme) => {
        const s = inputSpec(scheme);
        return s === null ? null : inputAmax(scheme, read(`${m}.${s[0]}`)!);
      },
      kvAmax: (layer, which) => Number(read(`${layerPrefix(layer)}.self_attn.${which}_scale`)!.data[0]) * KV_BOUND,
    });
  } finally {
    ckpt.close();
  }
}
