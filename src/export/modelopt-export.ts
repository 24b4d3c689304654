// Writing a quantized model as Model Optimizer's unified Hugging Face checkpoint (modelopt-format.ts has
// the layouts): every quantized Linear's packed weight and scales, input_scale from the calibrated amax,
// pre_quant_scale from the smoothing factors, k_scale / v_scale for a quantized KV cache; every other tensor
// copied from the source checkpoint byte for byte; config.json with quantization_config, hf_quant_config.json,
// tokenizer and generation config copied. The checker (modelopt-check.ts) runs on the tensors before
// anything is written, and the directory appears only when complete (written beside it, then renamed).

import { basename, join, resolve } from 'node:path';
import { SafetensorsCheckpoint, writeShardedCheckpoint } from '../io/safetensors.js';
import type { RawTensor } from '../io/raw-tensor.js';
import { writeJsonAtomic } from '../io/json-file.js';
import { linearNames, type QuantizedModel } from '../quant/ptq.js';
import type { ActScheme } from '../quant/scheme.js';
import { checkExportOut, writeStaged } from './staging.js';
import { HF_QUANT_CONFIG, configQuantization, hfQuantConfig, type QuantAlgo } from './modelopt-format.js';
import { INPUT_BOUND, KV_BOUND, weightTensors } from './modelopt-tensors.js';
import { checkpointAlgo, kvScaleName } from './modelopt-plan.js';
import { checkQuantizedTensors } from './modelopt-check.js';
import type { ExportSummary } from './registry.js';
import { writeHfFiles } from './hf-files.js';

export const MOPT_VERSION = '0.1.0';

export interface ExportOptions {
  /** the quantization state's preset (null: a custom recipe, exported per layer) and KV preset */
  preset: string | null;
  kvCache: string | null;
  /** replace a non-empty output directory */
  overwrite?: boolean;
  maxShardBytes?: number;
  /** writes more files (a report, the quantization state) into the staged directory before it is renamed into place */
  alsoWrite?: (dir: string) => void;
}

/** A checkpoint ready to write: its tensors and metadata, computed from a planned, calibrated model. */
export interface PreparedExport {
  source: string;
  algo: QuantAlgo;
  tensors: Map<string, RawTensor>;
  excluded: string[];
  quantizedLinears: number;
}


/** Exports q (planned, calibrated, not applied) built on the checkpoint in `source` to `out`. */
export function exportModelopt(q: QuantizedModel, source: string, out: string, o: ExportOptions): ExportSummary {
  checkExportOut(source, out, o.overwrite);
  return writeModelopt(prepareModelopt(q, source, o), out, o);
}

/** The checkpoint's tensors and metadata, checked; q must not be applied yet (its source weights are needed). */
export function prepareModelopt(q: QuantizedModel, source: string, o: Pick<ExportOptions, 'preset' | 'kvCache'>): PreparedExport {
  const codes = q.weightCodes();
  const excluded = linearNames(q.model).filter((l) => !codes.has(l)).map((l) => (l === 'model.embed_tokens' ? 'lm_head' : l));
  // static input scales of every quantized input, also of a Linear whose weight stays unquantized (W4A8's FP8
  // input on a weight its INT4 groups do not fit): the loader plans that input from the tensor's presence
  const inputScales = new Map<string, RawTensor>();
  for (const x of q.quantizers) {
    const bound = x.role === 'input' && x.scheme !== null ? INPUT_BOUND[(x.scheme as ActScheme).kind as keyof typeof INPUT_BOUND] : undefined;
    if (bound !== undefined) inputScales.set(`${x.module}.input_scale`, scalar(x.amax! / bound));
  }
  const algo = checkpointAlgo(q, { preset: o.preset, kvCache: o.kvCache, exclude: excluded, hasInputScale: (l) => inputScales.has(`${l}.input_scale`) });
  const tensors = new Map<string, RawTensor>();
  const ckpt = SafetensorsCheckpoint.open(source);
  try {
    for (const name of ckpt.names()) {
      const lin = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : null;
      const c = lin === null ? undefined : codes.get(lin);
      if (lin === null || c === undefined) tensors.set(name, ckpt.read(name));
      else for (const [suffix, t] of Object.entries(weightTensors(c.codes))) tensors.set(`${lin}.${suffix}`, t);
    }
  } finally {
    ckpt.close();
  }
  for (const [name, t] of inputScales) tensors.set(name, t);
  for (const [lin, c] of q.smooth) tensors.set(`${lin}.pre_quant_scale`, { dtype: 'float32', shape: [c.length], data: c });
  for (const kv of q.quantizers) {
    if (kv.role === 'kv' && kv.scheme !== null) tensors.set(kvScaleName(Number(kv.module), kv.name.endsWith('k_bmm_quantizer') ? 'k' : 'v'), scalar(kv.amax! / KV_BOUND));
  }
  checkQuantizedTensors(q, algo, (name) => tensors.get(name), `export of ${source}`);
  return { source, algo, tensors, excluded, quantizedLinears: codes.size };
}

/** Writes a prepared checkpoint to `out`: staged beside it, renamed into place when complete. */
export function writeModelopt(p: PreparedExport, out: string, o: Pick<ExportOptions, 'overwrite' | 'maxShardBytes' | 'alsoWrite'>): ExportSummary {
  const { source, algo, tensors, excluded } = p;
  return writeStaged(source, out, o.overwrite, (tmp) => {
    const { files } = writeShardedCheckpoint(tmp, tensors, { maxShardBytes: o.maxShardBytes, metadata: { format: 'pt' } });
    writeConfigs(source, tmp, algo, excluded);
    o.alsoWrite?.(tmp);
    const outDir = resolve(out);
    return { dir: outDir, format: 'modelopt', quantAlgo: algo.quantAlgo, quantizedLinears: p.quantizedLinears, excluded, files: files.map((f) => join(outDir, basename(f))) };
  });
}

function writeConfigs(source: string, dir: string, algo: QuantAlgo, excluded: readonly string[]): void {
  writeHfFiles(source, dir, configQuantization(algo, excluded, MOPT_VERSION));
  writeJsonAtomic(join(dir, HF_QUANT_CONFIG), hfQuantConfig(algo, excluded, MOPT_VERSION));
}

const scalar = (v: number): RawTensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(v) });
