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
import type { Backend } from '../backend/backend.js';
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
  const src = ParamSource.open(dir, opts);
  try {
    const params = new Map<string, Tensor>();
    for (const spec of parameterSpecs(src.config)) params.set(spec.name, src.read(spec.name));
    return new DecoderLM(src.config, params);
  } finally {
    src.close();
  }
}

/**
 * A checkpoint's parameters read one at a time onto the device, each checked against config.json: loadModel
 * reads them all; layer-by-layer calibration (src/quant/layerwise.ts) reads one layer's worth at a time.
 */
export class ParamSource {
  private readonly specs: Map<string, readonly number[]>;

  private constructor(readonly dir: string, readonly config: DecoderConfig, private readonly ckpt: SafetensorsCheckpoint, private readonly opts: LoadOptions) {
    this.specs = new Map(parameterSpecs(config).map((s) => [s.name, s.shape]));
  }

  static open(dir: string, opts: LoadOptions = {}): ParamSource {
    const config = readModelConfig(dir);
    return new ParamSource(dir, config, SafetensorsCheckpoint.open(dir), opts);
  }

  get dtype(): DType {
    return this.opts.dtype ?? 'float32';
  }
  get backend(): Backend {
    return getBackend(this.opts.device ?? 'cpu');
  }

  /** Parameter `name` in the compute dtype on the device, kept (the caller disposes it). */
  read(name: string): Tensor {
    const { dir, config, ckpt, opts } = this;
    const dtype = this.dtype;
    const backend = this.backend;
    const shape = this.specs.get(name);
    if (shape === undefined) throw new Error(`${name} is no parameter of a ${config.modelType} model`);
    const substitute = opts.storedAs?.(name, shape) ?? null;
    if (substitute !== null) return keep(tidy(() => fromStorage(substitute.data, substitute.shape, substitute.dtype, { device: backend }).cast(dtype)));
    if (!ckpt.has(name)) {
      throw new UserError(
        `${dir}: the checkpoint has no tensor "${name}", which config.json (${config.modelType}, ${config.numLayers} layers) requires; the weights and config.json do not belong together`,
      );
    }
    const info = ckpt.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new UserError(
        `${dir}: tensor "${name}" has shape ${shapeStr(info.shape)} but config.json implies ${shapeStr(shape)}; the weights and config.json do not belong together`,
      );
    }
    if (!(info.dtype === 'float32' || info.dtype === 'float16' || info.dtype === 'bfloat16' || info.dtype === 'float64')) {
      throw new UserError(`${dir}: tensor "${name}" is stored as ${info.dtype}; mopt loads float32/float16/bfloat16 weights (quantized checkpoints load through their own reader)`);
    }
    const raw = ckpt.read(name);
    return keep(tidy(() => {
      const stored = fromStorage(raw.data, raw.shape, raw.dtype, { device: backend });
      const bad = countNonFinite(stored);
      if (bad > 0) throw new UserError(`${dir}: tensor "${name}" holds ${bad} NaN/inf values; the checkpoint is corrupt`);
      return stored.dtype === dtype ? stored : stored.cast(dtype);
    }));
  }

  close(): void {
    this.ckpt.close();
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
