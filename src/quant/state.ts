// A quantization state directory: `mopt-quant.json` names the source checkpoint, the exact recipe rules,
// the calibrator and every calibrated amax. Loading it rebuilds the fake-quantized model deterministically
// (weights are re-quantized from the source by the same bit-exact code), so `mopt eval` / `generate` /
// `forward` take the directory as --model; `mopt export` turns it into a deployable checkpoint (src/export).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readJsonFile, writeJsonAtomic } from '../io/json-file.js';
import { loadModel, type LoadOptions } from '../models/load.js';
import { UserError } from '../util/errors.js';
import { recipeFromData } from './recipes/parse.js';
import type { RecipeData } from './recipes/serialize.js';
import { QuantizedModel } from './ptq.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';

export const STATE_FILE = 'mopt-quant.json';
const FORMAT = 'mopt-quantization';

export interface QuantState {
  format: typeof FORMAT;
  version: 1;
  /** absolute path of the source Hugging Face checkpoint */
  source: string;
  preset: string | null;
  kvCache: string | null;
  calibrator: string;
  recipe: RecipeData;
  amax: Record<string, number>;
  /** per-input-channel smoothing factors by Linear (SmoothQuant, AWQ), when the algorithm set any */
  smooth?: Record<string, number[]>;
  /**
   * file beside the state holding the weights an algorithm quantized (GPTQ, MSE, AWQ clip), dequantized,
   * float32, each with the amax values of its static scales (`<linear>.weight_block_amax` float32 per block,
   * `<linear>.weight_global_amax` float64 for NVFP4) so the export can write their codes
   */
  weights?: string;
}

export const WEIGHTS_FILE = 'quantized-weights.safetensors';
const BLOCK_AMAX = 'weight_block_amax';
const GLOBAL_AMAX = 'weight_global_amax';

/** Writes the pre-quantized weights of q (if any) beside the state; returns the file name or undefined. */
export function savePrequantized(dir: string, q: QuantizedModel): string | undefined {
  const names = q.prequantizedLinears();
  if (names.length === 0) return undefined;
  const tensors = new Map<string, RawTensor>();
  for (const lin of names) {
    const w = q.model.params.get(`${lin}.weight`)!;
    tensors.set(`${lin}.weight`, { dtype: 'float32', shape: [...w.shape], data: q.prequantizedValues(lin) ?? w.toFloat32Array() });
    const s = q.staticScalesOf(lin);
    if (s === undefined) continue;
    tensors.set(`${lin}.${BLOCK_AMAX}`, { dtype: 'float32', shape: [s.blockAmax.length], data: s.blockAmax });
    if (s.globalAmax !== null) tensors.set(`${lin}.${GLOBAL_AMAX}`, { dtype: 'float64', shape: [], data: Float64Array.of(s.globalAmax) });
  }
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors);
  return WEIGHTS_FILE;
}

export function isQuantDir(dir: string): boolean {
  return existsSync(join(dir, STATE_FILE));
}

export function saveState(dir: string, s: Omit<QuantState, 'format' | 'version'>): void {
  writeJsonAtomic(join(dir, STATE_FILE), { format: FORMAT, version: 1, ...s, source: resolve(s.source) });
}

export function readState(dir: string): QuantState {
  const path = join(dir, STATE_FILE);
  const d = readJsonFile(path, 'quantization state') as Partial<QuantState>;
  if (d.format !== FORMAT || d.version !== 1) throw new UserError(`${path}: not a mopt quantization state (format ${JSON.stringify(d.format)}, version ${JSON.stringify(d.version)})`);
  if (typeof d.source !== 'string' || typeof d.recipe !== 'object' || d.recipe === null || typeof d.amax !== 'object' || d.amax === null) {
    throw new UserError(`${path}: missing source, recipe or amax; re-run mopt quantize`);
  }
  if (!existsSync(d.source)) throw new UserError(`${path}: its source model ${d.source} no longer exists; re-run mopt quantize or restore the model`);
  return d as QuantState;
}

/** The source model with the saved quantization applied. */
export function loadQuantized(dir: string, opts: LoadOptions): QuantizedModel {
  const q = restoreQuantized(dir, opts).q;
  q.apply();
  return q;
}

/** The source model, planned and calibrated from the saved state but not applied (what export starts from). */
export function restoreQuantized(dir: string, opts: LoadOptions): { q: QuantizedModel; state: QuantState } {
  const s = readState(dir);
  const model = loadModel(s.source, opts);
  const q = new QuantizedModel(model, recipeFromData(s.recipe, join(dir, STATE_FILE)));
  for (const [lin, c] of Object.entries(s.smooth ?? {})) {
    const w = model.params.get(`${lin}.weight`);
    if (w === undefined || !Array.isArray(c) || c.length !== w.shape[1] || !c.every((v) => typeof v === 'number' && v > 0 && Number.isFinite(v))) {
      throw new UserError(`${join(dir, STATE_FILE)}: smoothing factors for ${lin} do not fit the model; re-run mopt quantize`);
    }
    q.smooth.set(lin, Float32Array.from(c));
  }
  if (s.weights !== undefined) {
    const f = SafetensorsFile.open(join(dir, s.weights));
    try {
      for (const name of f.names()) {
        if (name.endsWith(`.${BLOCK_AMAX}`) || name.endsWith(`.${GLOBAL_AMAX}`)) continue;
        const w = model.params.get(name);
        const t = f.read(name);
        if (w === undefined || t.dtype !== 'float32' || t.shape.join() !== w.shape.join()) {
          throw new UserError(`${join(dir, s.weights)}: ${name} does not fit the model; re-run mopt quantize`);
        }
        const lin = name.replace(/\.weight$/, '');
        const block = f.has(`${lin}.${BLOCK_AMAX}`) ? f.read(`${lin}.${BLOCK_AMAX}`) : null;
        const global = f.has(`${lin}.${GLOBAL_AMAX}`) ? f.read(`${lin}.${GLOBAL_AMAX}`) : null;
        const scales = block?.dtype === 'float32' ? { blockAmax: block.data as Float32Array, globalAmax: global === null ? null : Number(global.data[0]) } : undefined;
        q.setPrequantized(lin, w.toFloat32Array(), t.data as Float32Array, scales);
      }
    } finally {
      f.close();
    }
  }
  q.setAmax(s.amax);
  return { q, state: s };
}
