// Building a DecoderLM from a Hugging Face model directory (config.json + safetensors), or from a
// config with fresh random weights. Every tensor is checked against what config.json implies.

import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { parseDecoderConfig, type DecoderConfig } from './config.js';
import { DecoderLM, parameterSpecs } from './decoder.js';
import { readJsonFile } from '../io/json-file.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { fromStorage, randn, full, mul, max, unary, keep, tidy, noGrad, type DType, type Tensor } from '../tensor/index.js';
import { getBackend } from '../backend/registry.js';
import { UserError } from '../util/errors.js';
import { shapeStr } from '../tensor/shape.js';

export interface LoadOptions {
  /** compute dtype of the weights (default float32) */
  dtype?: DType;
  device?: string;
  /**
   * For checkpoints that store some parameters in another form (quantized exports): the float values of
   * parameter `name` with shape `shape`, or null to read it from the file as usual.
   */
  storedAs?: (name: string, shape: readonly number[]) => RawTensor | null;
}

export function readModelConfig(dir: string): DecoderConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new UserError(`${dir} has no config.json; point --model at a Hugging Face model directory`);
  return parseDecoderConfig(readJsonFile(path, 'model config'), path);
}

/** Number of NaN/inf values; checked with one device-side reduction, counted on the host only when bad. */
function countNonFinite(t: Tensor): number {
  const peak = tidy(() => max(unary('abs', t.dtype === 'float32' ? t : t.cast('float32'))).item());
  if (Number.isFinite(peak)) return 0;
  const v = t.toFloat32Array();
  let bad = 0;
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) bad++;
  return bad;
}

export function loadModel(dir: string, opts: LoadOptions = {}): DecoderLM {
  const config = readModelConfig(dir);
  const dtype = opts.dtype ?? 'float32';
  const backend = getBackend(opts.device ?? 'cpu');
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const params = new Map<string, Tensor>();
    for (const spec of parameterSpecs(config)) {
      const substitute = opts.storedAs?.(spec.name, spec.shape) ?? null;
      if (substitute !== null) {
        params.set(spec.name, keep(tidy(() => fromStorage(substitute.data, substitute.shape, substitute.dtype, { device: backend }).cast(dtype))));
        continue;
      }
      if (!ckpt.has(spec.name)) {
        throw new UserError(
          `${dir}: the checkpoint has no tensor "${spec.name}", which config.json (${config.modelType}, ${config.numLayers} layers) requires; the weights and config.json do not belong together`,
        );
      }
      const info = ckpt.info(spec.name);
      if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i])) {
        throw new UserError(
          `${dir}: tensor "${spec.name}" has shape ${shapeStr(info.shape)} but config.json implies ${shapeStr(spec.shape)}; the weights and config.json do not belong together`,
        );
      }
      if (!(info.dtype === 'float32' || info.dtype === 'float16' || info.dtype === 'bfloat16' || info.dtype === 'float64')) {
        throw new UserError(`${dir}: tensor "${spec.name}" is stored as ${info.dtype}; mopt loads float32/float16/bfloat16 weights (quantized checkpoints load through their own reader)`);
      }
      const raw = ckpt.read(spec.name);
      const t = tidy(() => {
        const stored = fromStorage(raw.data, raw.shape, raw.dtype, { device: backend });
        const bad = countNonFinite(stored);
        if (bad > 0) throw new UserError(`${dir}: tensor "${spec.name}" holds ${bad} NaN/inf values; the checkpoint is corrupt`);
        return stored.dtype === dtype ? stored : stored.cast(dtype);
      });
      params.set(spec.name, keep(t));
    }
    return new DecoderLM(config, params);
  } finally {
    ckpt.close();
  }
}

/** A model with freshly initialised weights (N(0, 0.02) matrices, unit norms, zero biases). */
export function initModel(config: DecoderConfig, seed: number, opts: LoadOptions = {}): DecoderLM {
  const dtype = opts.dtype ?? 'float32';
  const device = getBackend(opts.device ?? 'cpu');
  const params = new Map<string, Tensor>();
  noGrad(() => {
    parameterSpecs(config).forEach((spec, i) => {
      const t = tidy(() => {
        if (spec.init === 'normal') return mul(randn(spec.shape, seed * 1000 + i, { device }), 0.02).cast(dtype);
        return full(spec.shape, spec.init === 'ones' ? 1 : 0, { dtype, device });
      });
      params.set(spec.name, keep(t));
    });
  });
  return new DecoderLM(config, params);
}
